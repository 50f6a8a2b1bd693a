"""Reports: figures and a summary table read back from MLflow, written after every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.report.data import default_levels
from lth_suite.report.writer import FIGURES
from lth_suite.spec.loading import build_spec, spec_hash
from lth_suite.tracking import open_reader
from tests.conftest import TINY

PNG = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = {*FIGURES, "summary.md"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny spec with 2 replicates (bands), run once for the module: (uri, finished)."""
    folder = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    data = {**TINY, "experiment": {**TINY["experiment"], "replicates": 2},
            "tracking": {"log_models": "none"}}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        finished = run_experiment(build_spec(data, plugins.registry), plugins, uri)
    return uri, finished


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of the first Markdown table's body rows."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| level"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_writes_every_figure_and_a_row_per_level(experiment, tmp_path):
    uri, finished = experiment
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", finished.parent_run_id, "--out", str(out),
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    for name in FIGURES:
        payload = (out / name).read_bytes()
        assert payload.startswith(PNG) and len(payload) > 10_000, name
    summary = (out / "summary.md").read_text()
    rows = table_rows(summary)
    assert [row[0] for row in rows] == ["0", "1", "2"]
    assert rows[0][1] == "100.0" and float(rows[2][1]) < float(rows[1][1]) < 100
    assert "±" in rows[1][2] and rows[0][3] == "–"  # spread over 2 replicates; no control at 0
    ticket = finished.summary[1]["ticket/early_stop_test_accuracy"]
    assert rows[1][2].startswith(f"{100 * ticket:.2f}")
    assert "IoU across replicates" in summary
    client = MlflowClient(uri)
    logged = {Path(a.path).name for a in client.list_artifacts(finished.parent_run_id, "report")}
    assert logged == REPORT_FILES


@pytest.mark.parametrize("key", ["name", "hash", "hash8", "run_name", "child"])
def test_an_experiment_is_found_by_id_name_hash_or_child(experiment, key):
    uri, finished = experiment
    reader = open_reader(uri)
    parent = reader.run(finished.parent_run_id)
    child = reader.children(parent.run_id)[0].run_id
    value = {"name": "tiny", "hash": finished.spec_hash, "hash8": finished.spec_hash[:8],
             "run_name": parent.name, "child": child}[key]
    assert reader.find_experiment(value).run_id == finished.parent_run_id


def test_levels_option_picks_the_curves(experiment, tmp_path):
    uri, finished = experiment
    result = CliRunner().invoke(app, ["report", "tiny", "--out", str(tmp_path / "r"),
                                      "--tracking-uri", uri, "--levels", "0,2"])
    assert result.exit_code == 0, result.output
    assert "at levels 0, 2." in (tmp_path / "r" / "summary.md").read_text()


def test_default_levels_are_spread():
    assert default_levels([0, 1, 2]) == [0, 1, 2]
    assert default_levels(list(range(6))) == [0, 2, 3, 5]
    assert default_levels(list(range(21))) == [0, 7, 13, 20]


def test_report_errors_exit_2_with_one_line(experiment, tmp_path):
    uri, _ = experiment
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    cases = [(["tiny", "--levels", "0,7"], uri, "level 7"),
             (["tiny", "--levels", "zero"], uri, "--levels"),
             (["no-such-experiment"], uri, "not a run id"),
             (["0" * 32], uri, "not a run id"),
             (["tiny"], missing, "no MLflow store")]
    for args, store, words in cases:
        result = CliRunner().invoke(app, ["report", *args, "--out", str(tmp_path / "r"),
                                          "--tracking-uri", store])
        assert result.exit_code == 2, result.output
        assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "r").exists()


def small(tiny) -> dict:
    """The tiny spec cut to two trainings."""
    tiny["pruning"]["levels"] = 1
    tiny["controls"] = {"reinit": False, "random_prune": False}
    tiny["tracking"]["log_models"] = "none"
    return tiny


def test_run_writes_the_report_unless_disabled(tiny, write_spec, tracking_uri, tmp_path):
    spec = write_spec(small(tiny))
    result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    folders = list((tmp_path / "reports").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny-")
    assert {p.name for p in folders[0].iterdir()} == REPORT_FILES
    assert f"report: {Path('reports') / folders[0].name}/" in result.output
    assert len(table_rows((folders[0] / "summary.md").read_text())) == 2

    off = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", tracking_uri,
                                   "--set", "report.enabled=false"])
    assert off.exit_code == 0, off.output
    assert "report:" not in off.output
    client = MlflowClient(tracking_uri)
    parents = [r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    reported = [bool(client.list_artifacts(p.info.run_id, "report")) for p in parents]
    assert sorted(reported) == [False, True]


def test_a_failing_report_keeps_the_finished_run(tiny, write_spec, tracking_uri, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("lth_suite.report.writer.write_report", broken)
    result = CliRunner().invoke(app, ["run", str(write_spec(small(tiny))),
                                      "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "warning: the report could not be written (RuntimeError: disk full)" in result.output
    assert "lth-suite report " in result.output
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_report_section_is_validated_and_not_hashed(tiny, registry):
    plain = spec_hash(build_spec(tiny, registry))
    tiny["report"] = {"enabled": False, "levels": [0, 2]}
    assert spec_hash(build_spec(tiny, registry)) == plain
    for levels, words in (([3], "beyond pruning.levels"), ([-1], "levels >= 0"), ([], "non-empty")):
        tiny["report"] = {"levels": levels}
        with pytest.raises(SpecError, match=words):
            build_spec(tiny, registry)
