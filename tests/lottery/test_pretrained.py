"""model.pretrained: the level-0 starting point, checked before any run starts."""

from __future__ import annotations

import re

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import save_file
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.spec.loading import build_spec, canonical, spec_hash
from lth_suite.tracking.names import TICKET


def pretrained_file(tiny, registry, plugins, folder, suffix=".safetensors", wrap=None):
    """The tiny spec's network with every weight shifted by 1, saved as a checkpoint."""
    model = prepare(build_spec(tiny, registry), plugins).build_model(123)
    state = {k: (v + 1.0).contiguous() for k, v in model.state_dict().items()}
    path = folder / f"start{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    return path, state


@pytest.mark.parametrize("suffix, wrap", [(".safetensors", None), (".pt", None),
                                          (".pt", "state_dict")])
def test_pretrained_weights_are_every_replicates_start(tiny, registry, plugins, tmp_path,
                                                       suffix, wrap):
    path, state = pretrained_file(tiny, registry, plugins, tmp_path, suffix, wrap)
    experiment = prepare(build_spec({**tiny, "model": {**tiny["model"], "pretrained": str(path)}},
                                    registry), plugins)
    for seed in (0, 7):
        built = experiment.build_model(seed).state_dict()
        assert all(torch.equal(built[k], v) for k, v in state.items())
    own = experiment.build_model(7, pretrained=False).state_dict()
    assert not any(torch.equal(own[k], v) for k, v in state.items() if k.endswith("weight"))


def test_pretrained_is_hashed_only_when_given(tiny, registry, tmp_path):
    plain = build_spec(tiny, registry)
    assert "pretrained" not in canonical(plain)["model"]
    started = build_spec({**tiny, "model": {**tiny["model"], "pretrained": "a.safetensors"}},
                         registry)
    assert canonical(started)["model"]["pretrained"] == "a.safetensors"
    assert spec_hash(started) != spec_hash(plain)


def test_level_1_rewinds_to_the_pretrained_weights(tiny, registry, plugins, tmp_path,
                                                   tracking_uri):
    path, state = pretrained_file(tiny, registry, plugins, tmp_path)
    tiny.update(model={**tiny["model"], "pretrained": str(path)},
                experiment={**tiny["experiment"], "replicates": 1})
    tiny["pruning"]["levels"] = 1
    finished = run_experiment(build_spec(tiny, registry), plugins, tracking_uri)
    level = finished.levels[1]
    assert all(torch.equal(level.rewind_points[0].state[k], v) for k, v in state.items())
    assert level.of(TICKET)[0].mask.density() < 1


@pytest.mark.parametrize("content, message", [
    ("mismatch", r"start.pt does not fit the model: .*missing.*"),
    ("hub", r"'someone/some-model' is not a file and the hub did not give it"),
])
def test_a_bad_checkpoint_is_one_line_and_exit_2_before_any_run(tiny, write_spec, tmp_path,
                                                                tracking_uri, content, message,
                                                                monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # unreachable at once, no retries
    path = tmp_path / "start.pt"
    if content == "mismatch":
        torch.save({"fc1.weight": torch.zeros(2, 2)}, path)
    source = "someone/some-model" if content == "hub" else str(path)
    tiny["model"] = {**tiny["model"], "pretrained": source}
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri",
                                      tracking_uri])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model.pretrained: " in lines[0], lines
    assert re.search(message, lines[0]), lines
    assert "Traceback" not in result.output
    assert MlflowClient(tracking_uri).search_experiments(filter_string="name != 'Default'") == []


def test_read_errors_raise_spec_errors(tmp_path):
    from lth_suite.lottery.pretrained import read_state_dict

    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="garbage.pt: not a safetensors file or torch state dict"):
        read_state_dict(str(tmp_path / "garbage.pt"))
    with pytest.raises(SpecError, match="nowhere/start.pt: no such file"):
        read_state_dict(str(tmp_path / "nowhere" / "start.pt"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(SpecError, match="is a folder"):
        read_state_dict(str(tmp_path / "folder"))
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(SpecError, match="holds no state dict"):
        read_state_dict(str(tmp_path / "list.pt"))
