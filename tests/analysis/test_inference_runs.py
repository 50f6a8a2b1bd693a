"""What a ticket buys, end to end: the ``inference`` analyzer in a run, ``bench`` on the
finished experiment and ``export --format`` with its loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.analysis.format_export import load_exported
from lth_suite.cli import app
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.report.writer import report
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY
from lth_suite.training.data import DataInfo

ANALYZER = {"name": "inference", "batches": [1, 4], "rounds": 1, "warmup": 0}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A finished tiny experiment (2 pruned levels) with the inference analyzer."""
    folder = tmp_path_factory.mktemp("inference_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    spec = copy.deepcopy(TINY)
    spec["analyzers"] = [ANALYZER]
    spec["controls"] = {"reinit": False, "random_prune": False}
    spec["tracking"] = {"log_models": "none", "log_state_dicts": True}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        finished = run_experiment(build_spec(spec, plugins.registry), plugins, uri)
    client = MlflowClient(uri)
    parent = finished.parent_run_id
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent}'")
    tickets = {c.info.run_name: c.info.run_id for c in children}
    return uri, parent, tickets, folder


def test_the_analyzer_logs_every_level_with_the_machine(store, tmp_path):
    uri, parent, _, _ = store
    client = MlflowClient(uri)

    def steps(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(parent, key)}

    for key in ("dense/b1/latency_ms", "csr/b4/speedup", "shrunk/b1/latency_ms",
                "csr/weight_bytes", "csr/index_bytes", "dense/disk_bytes"):
        assert sorted(steps(f"inference/{key}")) == [0, 1, 2], key
    assert set(steps("inference/dense/b4/speedup").values()) == {1.0}
    sparse, full = steps("inference/csr/weight_bytes"), steps("inference/dense/weight_bytes")
    assert sparse[2] < full[2]  # the pruned CSR values take less room than dense weights
    if Path("/proc/self/clear_refs").exists():  # a Linux CPU's forward peak is measured too
        assert sorted(steps("inference/dense/b4/peak_bytes")) == [0, 1, 2]
    tags = client.get_run(parent).data.tags
    assert tags["inference.machine.torch"] == torch.__version__
    assert tags["inference.machine.threads"] == "1"
    rows = json.loads(Path(client.download_artifacts(
        parent, "analysis/inference/level_02.json")).read_text())["rows"]
    assert {(r["format"], r["batch"]) for r in rows if r["status"] == "ok"} >= {
        ("dense", 1), ("dense", 4), ("csr", 1), ("csr", 4)}
    summary = report(parent, uri, tmp_path / "report", log=False)
    text = (summary.folder / "summary.md").read_text()
    assert "## What this ticket buys here" in text and "csr speed-up" in text
    assert text.count("| 2 |") >= 2  # level 2 at both batch sizes
    assert "analysis_inference.png" in {path.name for path in summary.files}


def test_the_report_command_prints_what_the_tickets_buy(store, tmp_path):
    uri, parent, _, _ = store
    result = CliRunner().invoke(app, ["report", parent, "--out", str(tmp_path / "r"),
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "what this ticket buys here" in result.output and "best format" in result.output
    assert "batch 4: csr" in result.output  # where (or whether) csr pays


def test_bench_measures_every_level_of_a_finished_experiment(store, tmp_path):
    uri, parent, _, _ = store
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", parent, "--batch", "1,4", "--rounds", "1",
                                      "--formats", "csr,shrunk", "--json", str(out),
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "what this ticket buys here" in result.output and "csr speed-up" in result.output
    assert "test examples of digits" in result.output
    payload = json.loads(out.read_text())
    assert sorted(payload["rows"]) == ["0", "1", "2"]
    assert {r["format"] for r in payload["rows"]["2"]} == {"dense", "csr", "shrunk"}


@pytest.mark.parametrize("args, words", [
    (["--batch", "0"], "--batch"), (["--batch", "x"], "--batch"),
    (["--device", "tpu"], "--device"), (["--formats", "nope"], "format 'nope'")])
def test_bench_bad_input_exits_2_with_one_line(store, args, words):
    uri, parent, _, _ = store
    result = CliRunner().invoke(app, ["bench", parent, *args, "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["csr", "shrunk", "dense", "auto"])
def test_an_exported_format_reloads_and_matches_the_ticket(store, tmp_path, registry, fmt):
    uri, _, tickets, _ = store
    out = tmp_path / fmt
    result = CliRunner().invoke(app, ["export", tickets["r0-level2-ticket"], "--out", str(out),
                                      "--format", fmt, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "format.json").read_text())
    assert fmt == "auto" or meta["format"] == fmt
    masked = registry.build("architecture", "mlp", {"hidden": [32, 16]},
                            DataInfo("digits", (1, 8, 8), 10)).eval()
    masked.load_state_dict(torch.load(out / "masked_state_dict.pt", weights_only=True))
    loaded = load_exported(out)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.allclose(loaded(x), masked(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt, words", [("coo", "unknown format 'coo'"),
                                         ("2:4", "2:4 pattern")])
def test_export_refuses_a_format_it_cannot_write_before_writing(store, tmp_path, fmt, words):
    uri, _, tickets, _ = store
    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["export", tickets["r0-level1-ticket"], "--out", str(out),
                                      "--format", fmt, "--tracking-uri", uri])
    assert result.exit_code == 2 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_damaged_csr_export_is_refused_on_load(store, tmp_path):
    from lth_suite.errors import LthError

    uri, _, tickets, _ = store
    out = tmp_path / "csr"
    result = CliRunner().invoke(app, ["export", tickets["r0-level2-ticket"], "--out", str(out),
                                      "--format", "csr", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    path = out / json.loads((out / "format.json").read_text())["weights"]
    tensors = torch.load(path, weights_only=True)
    tensors["fc1.weight.col_indices"][0] = 10**6  # an index past the matrix
    torch.save(tensors, path)
    with pytest.raises(LthError, match="damaged"):
        load_exported(out)


@pytest.mark.parametrize("sparsity, level, two_four", [
    ({"pattern": "2:4"}, 2, "semi-structured sparse kernels run on CUDA only"),
    ({"dynamic": {"name": "rigl", "every": 10}, "density": 0.2}, 0, "no linear weight")])
def test_dst_and_nm_tickets_are_measured_the_same_way(tmp_path, plugins, sparsity, level,
                                                      two_four):
    spec = copy.deepcopy(TINY)
    spec.update(analyzers=[ANALYZER], sparsity=sparsity,
                controls={"reinit": False, "random_prune": False},
                tracking={"log_models": "none", "log_state_dicts": False})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        finished = run_experiment(build_spec(spec, plugins.registry), plugins, uri)
    client = MlflowClient(uri)
    rows = json.loads(Path(client.download_artifacts(
        finished.parent_run_id, f"analysis/inference/level_{level:02d}.json")).read_text())["rows"]
    status = {(r["format"], r["batch"]): r for r in rows}
    assert status[("csr", 4)]["status"] == "ok" and status[("csr", 4)]["speedup"] > 0
    if not torch.cuda.is_available():
        assert two_four in status[("2:4", None)]["reason"]
