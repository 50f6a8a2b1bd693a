"""Export: masked state dict, and shrunk networks that compute the masked network's function."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from typer.testing import CliRunner

from lth_suite.analysis.shrink import count, shrink, unsupported
from lth_suite.cli import app
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.spec.loading import build_spec
from lth_suite.training.data import DataInfo


def random_mask(model: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {layer.name: torch.rand(params[layer.name].shape, generator=generator) < density
            for layer in prunable_layers(model)}


def assert_same_function(masked: nn.Module, shrunk: nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = masked.eval()(x), shrunk.eval()(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()


def test_mlp_dead_units_are_removed_and_constant_ones_folded(registry):
    torch.manual_seed(0)
    model = registry.build("architecture", "mlp", {"hidden": [32, 16]},
                           DataInfo("t", (1, 8, 8), 10)).eval()
    keep = random_mask(model, 0.5, seed=0)
    keep["fc1.weight"][:4] = False  # no incoming weights: constant ReLU(bias)
    keep["fc2.weight"][:2] = False
    keep["out.weight"][0] = True  # every fc2 unit feeds the output ...
    keep["out.weight"][:, 10:13] = False  # ... but units 10-12
    with torch.no_grad():
        model.fc1.bias[:2] = torch.tensor([0.7, 1.3])  # constant and nonzero: must be folded
        model.fc1.bias[2:4] = -0.3  # ReLU(bias) = 0: dropped
        model.fc2.bias[:2] = torch.tensor([0.5, -0.5])
    mask = Mask(keep)
    mask.apply_(model)
    assert keep["fc2.weight"][:, :2].any()  # the folded constants do reach fc2

    shrunk = shrink(model, mask)

    assert shrunk.model is not None and not shrunk.reason
    changes = {c.layer: c for c in shrunk.layers}
    assert (changes["fc1"].constant_removed, changes["fc1"].after) == (4, 28)
    assert changes["fc2"].constant_removed == 2 and changes["fc2"].unused_removed == 3
    assert changes["fc2"].after == 11 and changes["out"].after == 10
    assert_same_function(model, shrunk.model, (1, 8, 8))
    before, after = count(model, (1, 8, 8), mask), count(shrunk.model, (1, 8, 8), shrunk.mask)
    assert after.parameters < before.parameters and after.macs < before.macs
    assert after.sparse_macs <= before.sparse_macs and after.nonzero <= before.nonzero


def test_conv_dead_filters_fold_where_exact_and_stay_before_a_padded_conv(registry):
    torch.manual_seed(1)
    model = registry.build("architecture", "conv", {"depth": 4, "width": 8, "hidden": [32]},
                           DataInfo("t", (3, 16, 16), 10)).eval()
    keep = random_mask(model, 0.7, seed=1)
    keep["conv1.weight"][:3] = False  # filter 0: ReLU(bias) = 0; filters 1, 2: constants
    keep["conv4.weight"][:3] = False  # constants through max pool and flatten into fc1
    keep["conv4.weight"][:, 5] = False  # conv3 filter 5: no outgoing weights
    keep["fc1.weight"][:, 3 * 16: 4 * 16] = False  # conv4 filter 3: no outgoing weights
    with torch.no_grad():
        model.conv1.bias[:3] = torch.tensor([-0.5, 0.5, 0.9])
        model.conv4.bias[:3] = torch.tensor([0.4, 0.3, -0.2])
    mask = Mask(keep)
    mask.apply_(model)
    before_mask = Mask({name: keep.clone() for name, keep in mask.items()})

    shrunk = shrink(model, mask)

    assert mask.equals(before_mask)
    changes = {c.layer: c for c in shrunk.layers}
    # conv2 pads with zeros: the two constant maps cannot fold into its bias; they merge
    assert (changes["conv1"].constant_removed, changes["conv1"].constant_kept) == (2, 1)
    assert changes["conv1"].after == 6
    assert changes["conv3"].unused_removed == 1 and changes["conv3"].after == 15
    assert changes["conv4"].constant_removed == 3 and changes["conv4"].unused_removed == 1
    assert shrunk.model.conv4.out_channels == 12 and shrunk.model.fc1.in_features == 12 * 16
    assert_same_function(model, shrunk.model, (3, 16, 16))
    before, after = count(model, (3, 16, 16), mask), count(shrunk.model, (3, 16, 16), shrunk.mask)
    assert after.parameters < before.parameters and after.macs < before.macs


def test_a_constant_filter_folds_into_an_unpadded_conv():
    torch.manual_seed(2)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(2, 4, 3))
    model.add_module("relu1", nn.ReLU())
    model.add_module("conv2", nn.Conv2d(4, 3, 3))
    model.add_module("flatten", nn.Flatten())
    model.add_module("out", nn.Linear(3 * 6 * 6, 5))
    keep = {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()
            if name.endswith("weight")}
    keep["conv1.weight"][1] = False
    with torch.no_grad():
        model.conv1.bias[1] = 0.8
    mask = Mask(keep)
    mask.apply_(model)
    shrunk = shrink(model, mask)
    assert shrunk.model.conv1.out_channels == 3 and shrunk.layers[0].constant_removed == 1
    assert_same_function(model, shrunk.model, (2, 10, 10))


@pytest.mark.parametrize("name, params, words", [
    ("vgg", {"depth": 11, "width": 4}, "normalisation"),
    ("resnet", {"depth": 8, "width": 4}, "normalisation"),
    ("vgg", {"depth": 11, "width": 4, "batch_norm": False}, "nn.Sequential"),
])
def test_networks_that_cannot_be_shrunk_say_why(registry, name, params, words):
    model = registry.build("architecture", name, params, DataInfo("t", (3, 32, 32), 10))
    assert words in unsupported(model)
    shrunk = shrink(model, Mask.dense(model))
    assert shrunk.model is None and words in shrunk.reason


def test_count_of_lenet_300_100(registry):
    model = registry.build("architecture", "mlp", {}, DataInfo("t", (1, 28, 28), 10))
    counts = count(model, (1, 28, 28))
    assert counts.parameters == counts.nonzero == 266_610
    assert counts.macs == counts.sparse_macs == 784 * 300 + 300 * 100 + 100 * 10


# --- through the store and the CLI ---------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store with a heavily pruned mlp experiment and a conv one."""
    folder = tmp_path_factory.mktemp("export_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    base = {"experiment": {"name": "shrinkable", "seed": 0},
            "dataset": {"name": "digits"},
            "training": {"batch_size": 60, "duration": "20it", "eval_every": 20},
            "pruning": {"levels": 1, "fraction": {"conv": 0.9, "linear": 0.95, "output": 0.5}},
            "controls": {"reinit": False, "random_prune": False}}
    specs = {"mlp": {**base, "model": {"name": "mlp", "hidden": [32, 16]},
                     "tracking": {"log_models": "final"}},
             "conv": {**base, "model": {"name": "conv", "depth": 2, "width": 8, "hidden": [16]},
                      "tracking": {"log_models": "none"}}}  # input shape from the dataset
    parents = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        for name, data in specs.items():
            parents[name] = run_experiment(build_spec(data, plugins.registry), plugins,
                                           uri).parent_run_id
    client = MlflowClient(uri)
    tickets = {}
    for name, parent in parents.items():
        children = client.search_runs([client.get_run(parent).info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{parent}'")
        tickets[name] = next(c.info.run_id for c in children
                             if c.info.run_name == "r0-level1-ticket")
    return uri, parents, tickets


@pytest.mark.parametrize("arch, shape", [("mlp", (1, 8, 8)), ("conv", (1, 8, 8))])
def test_export_cli_writes_masked_and_shrunk_networks(store, tmp_path, registry, arch, shape):
    uri, _, tickets = store
    out = tmp_path / "ticket"
    result = CliRunner().invoke(app, ["export", tickets[arch], "--out", str(out),
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"masked_state_dict.pt", "mask.npz",
                                               "shrunk_model.pt", "export.json"}
    summary = json.loads((out / "export.json").read_text())
    assert summary["shrunk"] and summary["input_shape"] == list(shape)
    assert summary["after"]["parameters"] < summary["before"]["parameters"]
    assert summary["after"]["macs"] < summary["before"]["macs"]
    assert "shrunk" in result.output and "MACs" in result.output

    mask = Mask.unpack((out / "mask.npz").read_bytes())
    state = torch.load(out / "masked_state_dict.pt", weights_only=True)
    assert all(not state[name][~keep].any() for name, keep in mask.items())
    params = {"mlp": {"hidden": [32, 16]}, "conv": {"depth": 2, "width": 8, "hidden": [16]}}
    masked = registry.build("architecture", arch, params[arch], DataInfo("digits", shape, 10))
    masked.load_state_dict(state)
    shrunk = torch.load(out / "shrunk_model.pt", weights_only=False)  # plain torch modules
    assert isinstance(shrunk, nn.Sequential)
    assert_same_function(masked, shrunk, shape)


def test_export_errors_exit_2_with_one_line(store, tmp_path):
    uri, parents, _ = store
    cases = [
        ([parents["mlp"]], "parent run"),
        (["0" * 32], "no run"),
        (["not-a-run"], "no run"),
    ]
    for args, words in cases:
        result = CliRunner().invoke(app, ["export", *args, "--out", str(tmp_path / "x"),
                                          "--tracking-uri", uri])
        assert result.exit_code == 2, result.output
        assert words in result.output and len(result.output.strip().splitlines()) == 1
    missing = f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["export", "0" * 32, "--out", str(tmp_path / "x"),
                                      "--tracking-uri", missing])
    assert result.exit_code == 2 and "no MLflow store" in result.output
    assert not (tmp_path / "missing").exists() and not (tmp_path / "x").exists()
