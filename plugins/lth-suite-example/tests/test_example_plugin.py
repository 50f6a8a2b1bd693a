"""lth-suite-example: its components register, validate and run in an experiment."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from lth_suite.api import DataInfo, SpecError, prunable_layers
from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec

SPEC = {
    "experiment": {"name": "example", "seed": 0},
    "model": {"name": "tiny_mlp", "width": 16},
    "dataset": "digits",
    "training": {"duration": "40it", "eval_every": 20, "batch_size": 60},
    "pruning": {"levels": 2},
    "controls": {"reinit": False, "random_prune": False},
    "analyzers": ["weight_norm"],
    "tracking": {"log_models": "none", "log_state_dicts": False},
}


def test_tiny_mlp_has_a_hidden_and_an_output_layer(plugins):
    model = plugins.registry.build("architecture", "tiny_mlp", {"width": 5},
                                   DataInfo("d", (1, 8, 8), 10))
    layers = {layer.name: layer.kind for layer in prunable_layers(model)}
    assert layers == {"hidden.weight": "linear", "out.weight": "output"}
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_a_typo_in_a_param_is_a_spec_error(plugins):
    with pytest.raises(SpecError, match=r"model\.widht: unknown field"):
        build_spec({**SPEC, "model": {"name": "tiny_mlp", "widht": 16}}, plugins.registry)


def test_weight_norm_is_logged_at_every_level(plugins, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    finished = run_experiment(build_spec(SPEC, plugins.registry), plugins, uri)
    client = MlflowClient(uri)
    history = client.get_metric_history(finished.parent_run_id, "weight_norm/total")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert all(m.value > 0 for m in history)
    # total is the L2 norm over the per-layer norms
    layers = {k: client.get_metric_history(finished.parent_run_id, f"weight_norm/{k}")
              for k in ("hidden.weight", "out.weight")}
    for step in (0, 1, 2):
        parts = [next(m.value for m in layers[k] if m.step == step) for k in layers]
        total = next(m.value for m in history if m.step == step)
        assert total == pytest.approx(math.hypot(*parts))


def test_loading_the_plugin_imports_no_torch():
    """The hooks and params live apart from the torch code, which is registered lazily."""
    from lth_suite.testing import heavy_imports

    assert heavy_imports("""
        import lth_suite_example
        from lth_suite.plugins.manager import load_plugins
        registry = load_plugins(extra=[lth_suite_example], installed=False).registry
        registry.get("architecture", "tiny_mlp"), registry.get("analyzer", "weight_norm")
    """) == []


def test_shuffled_weights_trains_beside_the_built_in_controls(plugins, tmp_path):
    spec = build_spec({**SPEC, "analyzers": [], "controls": {
        "reinit": True, "shuffled_weights": True, "oneshot": True}}, plugins.registry)
    finished = run_experiment(spec, plugins, f"sqlite:///{tmp_path / 'mlflow.db'}")
    for event in finished.levels[1:]:
        ticket = event.of("ticket")[0].mask
        assert event.of("shuffled_weights")[0].mask.equals(ticket)
        assert event.of("reinit") and event.of("oneshot")
    assert "shuffled_weights/early_stop_test_accuracy" in finished.summary[-1]


def test_shuffled_weights_keeps_each_layers_values(plugins):
    from lth_suite.api import ControlContext, Mask, RewindPoint

    weight = torch.arange(12.0).reshape(3, 4)
    mask = Mask({"w": weight > 4})
    point = RewindPoint({"w": weight}, 3, None)
    context = ControlContext(0, 1, mask, mask, point, {"w": weight}, {"w": weight},
                             {"w": weight}, [], None, None, None, 5,
                             torch.Generator().manual_seed(5), None, None, None, None)
    start = plugins.registry.build("control", "shuffled_weights", {})(context)
    shuffled = start.point.state["w"]
    assert torch.equal(shuffled[~mask["w"]], weight[~mask["w"]])  # pruned ones stay put
    assert sorted(shuffled[mask["w"]].tolist()) == sorted(weight[mask["w"]].tolist())
    assert not torch.equal(shuffled, weight) and start.point.start_iteration == 3
