"""The structural analyzers on hand-made masks with known answers, and once end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from lth_suite.analysis.similarity import chance_iou, chance_iou_pooled, iou
from lth_suite.builtin.analyzers.instability import barriers, interpolate
from lth_suite.builtin.analyzers.structure import unit_counts
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.events import BranchResult, LevelFinished
from lth_suite.lottery.experiment import prepare
from lth_suite.lottery.rewinding import RewindPoint
from lth_suite.pruning.masks import Layer, Mask, prunable_layers
from lth_suite.spec.loading import build_spec
from lth_suite.training.data import DataInfo
from lth_suite.training.result import TrainResult, snapshot


def branch(replicate: int, level: int, name: str, mask: dict) -> BranchResult:
    return BranchResult(replicate, level, name, Mask(mask), TrainResult(state={}, history=[]))


def event(level: int, layers: list[Layer], branches: list[BranchResult], **kw) -> LevelFinished:
    return LevelFinished(spec=None, level=level, layers=layers, branches=branches, **kw)


def halves(shape: tuple[int, ...], first: bool) -> torch.Tensor:
    """A mask keeping the first (or second) half of a tensor's weights."""
    flat = torch.zeros(int(torch.tensor(shape).prod()), dtype=torch.bool)
    half = len(flat) // 2
    flat[:half] = first
    flat[half:] = not first
    return flat.reshape(shape)


def rows_of(analysis, **match) -> list[dict]:
    return [r for r in analysis.table if all(r.get(k) == v for k, v in match.items())]


# --- mask_similarity ---------------------------------------------------------------------

SIM_LAYERS = [Layer("a.weight", "linear", 16), Layer("b.weight", "output", 8)]
SHAPES = {"a.weight": (4, 4), "b.weight": (2, 4)}


def test_mask_similarity_known_values(registry):
    analyzer = registry.build("analyzer", "mask_similarity", {})
    first = {n: halves(s, True) for n, s in SHAPES.items()}
    second = {n: halves(s, False) for n, s in SHAPES.items()}
    # Level 0: two replicates with disjoint masks; nothing earlier to compare with.
    zero = analyzer.after_level(event(0, SIM_LAYERS, [branch(0, 0, "ticket", first),
                                                      branch(1, 0, "ticket", second)]))
    assert zero.metrics["replicate_iou"] == 0.0
    assert zero.metrics["replicate_chance"] == pytest.approx(chance_iou(0.5, 0.5))  # 1/3
    assert not any(k.startswith(("consecutive", "ticket_vs_random")) for k in zero.metrics)
    # Level 1: replicate 0 keeps its mask, replicate 1 flips; controls equal / disjoint.
    one = analyzer.after_level(event(1, SIM_LAYERS, [
        branch(0, 1, "ticket", first), branch(1, 1, "ticket", first),
        branch(0, 1, "random_prune", first), branch(1, 1, "random_prune", second),
        branch(0, 1, "reinit", first), branch(1, 1, "reinit", first),
        branch(0, 1, "a_plugins_control", second)]))
    assert one.metrics["consecutive_iou"] == pytest.approx(0.5)  # mean of 1 and 0
    assert one.metrics["consecutive_chance"] == pytest.approx(1 / 3)
    assert one.metrics["replicate_iou"] == 1.0
    assert one.metrics["ticket_vs_random_prune_iou"] == pytest.approx(0.5)
    assert one.metrics["ticket_vs_a_plugins_control_iou"] == 0.0  # any control of its own mask
    assert not any(k.startswith("ticket_vs_reinit") for k in one.metrics)  # the ticket's mask
    for comparison in ("consecutive", "replicate", "ticket_vs_random_prune"):
        layer_rows = rows_of(one, comparison=comparison)
        assert {r["layer"] for r in layer_rows} == {"a.weight", "b.weight", "all"}
        assert all(r["chance"] == pytest.approx(1 / 3) for r in layer_rows)
    a_row = rows_of(one, comparison="replicate", layer="a.weight")[0]
    assert a_row["iou"] == 1.0 and a_row["density_a"] == 0.5 and a_row["pairs"] == 1


def test_mask_similarity_per_layer_chance_and_subset(registry):
    analyzer = registry.build("analyzer", "mask_similarity", {})
    dense = {n: torch.ones(s, dtype=torch.bool) for n, s in SHAPES.items()}
    sparse = {"a.weight": halves((4, 4), True), "b.weight": torch.ones(2, 4, dtype=torch.bool)}
    analyzer.after_level(event(0, SIM_LAYERS, [branch(0, 0, "ticket", dense)]))
    one = analyzer.after_level(event(1, SIM_LAYERS, [branch(0, 1, "ticket", sparse)]))
    # A subset's IoU is its share of the superset; per-layer chance follows each density.
    assert rows_of(one, layer="a.weight")[0]["iou"] == 0.5
    assert rows_of(one, layer="b.weight")[0]["iou"] == 1.0
    assert one.metrics["consecutive_iou"] == pytest.approx(16 / 24)
    assert one.metrics["consecutive_chance"] == pytest.approx(
        chance_iou_pooled([(16, 1.0, 0.5), (8, 1.0, 1.0)]))
    assert "replicate_iou" not in one.metrics  # a single replicate


def test_chance_iou_pooled_matches_random_masks():
    assert chance_iou_pooled([(10, 0.3, 0.6)]) == pytest.approx(chance_iou(0.3, 0.6))
    generator = torch.Generator().manual_seed(0)
    sizes, p, q = (200_000, 50_000), (0.2, 0.9), (0.5, 0.9)
    a = Mask({str(i): torch.rand(n, generator=generator) < p[i] for i, n in enumerate(sizes)})
    b = Mask({str(i): torch.rand(n, generator=generator) < q[i] for i, n in enumerate(sizes)})
    expected = chance_iou_pooled([(n, p[i], q[i]) for i, n in enumerate(sizes)])
    assert iou(a, b) == pytest.approx(expected, abs=0.005)
    assert abs(expected - chance_iou(sum(n * d for n, d in zip(sizes, p)) / sum(sizes),
                                     sum(n * d for n, d in zip(sizes, q)) / sum(sizes))) > 0.01


# --- structure ---------------------------------------------------------------------------

def mlp_masks() -> dict[str, torch.Tensor]:
    """A 6-4-3-2 MLP mask with known dead units and paths (see the test's comments)."""
    fc1 = torch.zeros(4, 6, dtype=torch.bool)
    fc1[0, [0, 1]] = fc1[1, 2] = fc1[3, 3] = True  # unit 2: no inputs; inputs 4, 5 unused
    fc2 = torch.zeros(3, 4, dtype=torch.bool)
    fc2[0, [0, 1]] = fc2[1, 2] = True  # unit 1 fed only by the dead fc1 unit 2; unit 2: none
    out = torch.zeros(2, 3, dtype=torch.bool)
    out[0, [0, 1]] = out[1, 2] = True  # class 1 fed only by the input-less fc2 unit 2
    return {"fc1.weight": fc1, "fc2.weight": fc2, "out.weight": out}


def mlp_model(registry) -> nn.Module:
    torch.manual_seed(0)
    return registry.build(
        "architecture", "mlp", {"hidden": [4, 3]}, DataInfo("t", (6,), 2))


def stub_experiment(model: nn.Module, example: torch.Tensor) -> SimpleNamespace:
    """What ``structure`` reads from ``LevelFinished.experiment``."""
    return SimpleNamespace(build_model=lambda seed: model, data=SimpleNamespace(x_test=example),
                           spec=SimpleNamespace(experiment=SimpleNamespace(seed=0)),
                           device=torch.device("cpu"))


@pytest.mark.parametrize("traced", [False, True])
def test_structure_dead_units_and_connectivity_of_a_hand_made_mlp(registry, traced):
    model = mlp_model(registry)
    layers = prunable_layers(model)
    experiment = stub_experiment(model, torch.randn(2, 6)) if traced else None
    analyzer = registry.build("analyzer", "structure", {})
    result = analyzer.after_level(event(1, layers, [branch(0, 1, "ticket", mlp_masks())],
                                        experiment=experiment))
    assert any(node.op == "pass" for node in analyzer.graph.nodes) == traced  # flatten, relu
    rows = {r["layer"]: r for r in result.table}
    assert (rows["fc1.weight"]["units_no_in"], rows["fc1.weight"]["inputs_no_out"]) == (1, 2)
    assert (rows["fc2.weight"]["units_no_in"], rows["fc2.weight"]["inputs_no_out"]) == (1, 1)
    assert (rows["out.weight"]["units_no_in"], rows["out.weight"]["inputs_no_out"]) == (0, 0)
    assert rows["fc1.weight"]["density"] == pytest.approx(4 / 24)
    # On an input-to-output path: fc1 units 0, 1; fc2 unit 0; class 0; inputs 0, 1, 2.
    assert [rows[n]["connected"] for n in ("fc1.weight", "fc2.weight", "out.weight")] == [2, 1, 1]
    m = result.metrics
    assert m["connected_inputs"] == pytest.approx(3 / 6)
    assert m["connected_units"] == pytest.approx(3 / 7)
    assert m["connected_outputs"] == pytest.approx(1 / 2)
    assert m["units_no_in"] == pytest.approx(2 / 9)
    assert m["inputs_no_out"] == pytest.approx(3 / 13)
    assert "empty_filters" not in m  # no conv layer


def test_structure_conv_filter_and_channel_spread():
    keep = torch.zeros(3, 2, 3, 3, dtype=torch.bool)  # filters x input channels x kernel
    keep[1, 0] = True  # filter 1: all of channel 0 (half its weights)
    keep[2, 0, 0, 0] = True  # filter 2: one weight; filter 0 and channel 1: nothing
    row = unit_counts(keep)
    assert (row["units_no_in"], row["inputs_no_out"]) == (1, 1)
    assert (row["empty_filters"], row["empty_channels"]) == (1 / 3, 1 / 2)
    assert (row["filter_kept_min"], row["filter_kept_max"]) == (0.0, 0.5)
    assert row["filter_kept_median"] == pytest.approx(1 / 18)
    assert row["channel_kept_max"] == pytest.approx(10 / 27)
    assert row["channel_kept_median"] == pytest.approx(5 / 27)


def test_structure_sees_residual_shortcuts(registry):
    torch.manual_seed(0)
    model = registry.build("architecture", "resnet", {"depth": 8, "width": 4},
                           DataInfo("t", (3, 8, 8), 5))
    layers = prunable_layers(model)
    mask = {k: v.clone() for k, v in Mask.dense(model, layers).items()}
    mask["stage1.block1.conv1.weight"][:] = False  # the block's residual branch is cut
    structure = registry.build("analyzer", "structure", {})
    experiment = stub_experiment(model, torch.randn(2, 3, 8, 8))
    traced = structure.after_level(event(1, layers, [branch(0, 1, "ticket", mask)],
                                         experiment=experiment))
    rows = {r["layer"]: r for r in traced.table}
    assert rows["stage1.block1.conv1.weight"]["connected"] == 0
    assert rows["stage1.block1.conv2.weight"]["connected"] == 0  # fed by nothing
    assert rows["stage2.block1.conv1.weight"]["connected"] == 8  # the shortcut carries on
    assert traced.metrics["connected_inputs"] == 1.0 and traced.metrics["connected_outputs"] == 1.0
    assert traced.metrics["connected_channels"] == pytest.approx(1 - 8 / sum(
        r["units"] for r in traced.table if r["kind"] == "conv"))
    # Without the network, layers that do not chain get no connectivity at all.
    chained = registry.build("analyzer", "structure", {}).after_level(
        event(1, layers, [branch(0, 1, "ticket", mask)]))
    assert "connected_inputs" not in chained.metrics and "empty_filters" in chained.metrics


# --- init_stats --------------------------------------------------------------------------

def test_init_stats_on_hand_made_weights(registry):
    layers = [Layer("w.weight", "linear", 4), Layer("v.weight", "output", 2)]
    keep = {"w.weight": torch.tensor([[True, False], [True, False]]),
            "v.weight": torch.tensor([[True, True]])}
    init = {"w.weight": torch.tensor([[3.0, -1.0], [-2.0, 0.5]]),
            "v.weight": torch.tensor([[1.0, 1.0]]), "w.bias": torch.zeros(2)}
    rewind = {"w.weight": torch.tensor([[-4.0, 0.0], [-2.0, 0.0]]),
              "v.weight": torch.tensor([[2.0, -2.0]])}
    result = registry.build("analyzer", "init_stats", {}).after_level(event(
        1, layers, [branch(0, 1, "ticket", keep)], init_states={0: init},
        rewind_points={0: RewindPoint(rewind)}))
    w_init = rows_of(result, state="init", layer="w.weight")[0]
    assert (w_init["kept_abs_mean"], w_init["pruned_abs_mean"]) == (2.5, 0.75)
    assert (w_init["kept_positive"], w_init["pruned_positive"]) == (0.5, 0.5)
    assert w_init["abs_ratio"] == pytest.approx(2.5 / 0.75)
    v_init = rows_of(result, state="init", layer="v.weight")[0]
    assert v_init["pruned_abs_mean"] is None and v_init["kept"] == 2
    m = result.metrics  # pooled over both tensors
    assert m["init_kept_abs_mean"] == pytest.approx((3 + 2 + 1 + 1) / 4)
    assert m["init_kept_positive"] == pytest.approx(3 / 4)
    assert m["init_pruned_abs_mean"] == pytest.approx(0.75)
    assert m["rewind_kept_abs_mean"] == pytest.approx((4 + 2 + 2 + 2) / 4)
    assert m["rewind_kept_positive"] == pytest.approx(1 / 4)
    assert m["rewind_pruned_abs_mean"] == 0.0 and m["rewind_pruned_zero"] == 1.0
    assert "rewind_abs_ratio" not in m  # undefined against all-zero pruned weights


# --- instability -------------------------------------------------------------------------

def test_barrier_definitions():
    alphas = [0, 1 / 3, 2 / 3, 1]
    values = barriers([0.1, 0.2, 0.4, 0.3], alphas)
    assert values["barrier"] == pytest.approx(0.4 - 0.2)  # max minus the endpoints' mean
    assert values["barrier_linear"] == pytest.approx(0.4 - (0.1 / 3 + 0.3 * 2 / 3))
    flat = barriers([0.2, 0.2, 0.2], [0, 0.5, 1])
    assert flat["barrier"] == pytest.approx(0) and flat["barrier_linear"] == pytest.approx(0)


def test_interpolate_mixes_floats_and_keeps_counters():
    a = {"w": torch.zeros(2), "bn.running_mean": torch.zeros(1),
         "bn.num_batches_tracked": torch.tensor(3)}
    b = {"w": torch.ones(2), "bn.running_mean": torch.full((1,), 4.0),
         "bn.num_batches_tracked": torch.tensor(9)}
    mixed = interpolate(a, b, 0.25)
    assert torch.equal(mixed["w"], torch.full((2,), 0.25))
    assert mixed["bn.running_mean"].item() == 1.0 and mixed["bn.num_batches_tracked"].item() == 3


def test_instability_on_a_tiny_mlp(tiny, plugins):
    spec = build_spec(tiny, plugins.registry)
    experiment = prepare(spec, plugins)
    model = experiment.build_model(1)
    init = snapshot(model)
    before = {k: v.clone() for k, v in init.items()}
    mask = Mask.dense(model, experiment.layers)
    analyzer = plugins.registry.build("analyzer", "instability", {"points": 5, "iterations": 15})
    result = analyzer.after_level(LevelFinished(
        spec, 0, experiment.layers, [branch(0, 0, "ticket", dict(mask))], {0: init},
        rewind_points={0: RewindPoint(init)}, experiment=experiment))
    assert [r["alpha"] for r in result.table] == [0, 0.25, 0.5, 0.75, 1]
    assert all(0 <= r["error"] <= 1 for r in result.table)
    barrier = result.metrics["barrier"]
    assert barrier == barrier and barrier >= -1e-9  # finite, not negative
    assert result.metrics["max_error"] >= result.metrics["endpoint_error"]
    assert all(torch.equal(v, before[k]) for k, v in init.items())  # the rewind point is read-only


# --- end to end --------------------------------------------------------------------------

def test_analyzers_log_metrics_per_level_and_tables(tiny, plugins, tracking_uri):
    tiny["analyzers"] = ["mask_similarity", "structure", "init_stats"]
    # Models, state dicts and reinit are not under test here: leaving them out saves time.
    tiny["tracking"] = {"log_models": "none", "log_state_dicts": False}
    tiny["controls"]["reinit"] = False
    finished = run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri)
    client = MlflowClient(tracking_uri)
    parent = finished.parent_run_id

    def steps(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(parent, key)}

    assert sorted(steps("structure/units_no_in")) == [0, 1, 2]
    assert steps("structure/connected_inputs")[0] == 1.0  # the dense network
    assert sorted(steps("mask_similarity/consecutive_iou")) == [1, 2]
    kept = [sum(lv.of("ticket")[0].mask.kept().values()) for lv in finished.levels]
    # Iterative pruning nests the masks: a level's IoU with the last is its share of it.
    assert steps("mask_similarity/consecutive_iou")[2] == pytest.approx(kept[2] / kept[1])
    assert sorted(steps("mask_similarity/ticket_vs_random_prune_iou")) == [1, 2]
    assert sorted(steps("init_stats/init_pruned_abs_mean")) == [1, 2]
    for name in ("mask_similarity", "structure", "init_stats"):
        path = client.download_artifacts(parent, f"analysis/{name}/level_02.json")
        rows = json.loads(Path(path).read_text())["rows"]
        assert rows and all("layer" in row for row in rows), name
    path = client.download_artifacts(parent, "analysis/structure/level_01.json")
    rows = json.loads(Path(path).read_text())["rows"]
    assert {r["layer"] for r in rows} == {layer.name for layer in finished.levels[1].layers}
