"""Reports: figures and a summary table read back from MLflow, written after every run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.report.data import default_levels
from lth_suite.report.writer import FIGURES, write_report
from lth_suite.spec.loading import build_spec, spec_hash
from lth_suite.spec.report import Report
from lth_suite.tracking import open_reader
from tests.conftest import TINY

PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"
ANALYZERS = ["layer_density", "mask_similarity", "structure", "init_stats"]
STEMS = [*FIGURES, *(f"analysis_{name}" for name in ANALYZERS)]
REPORT_FILES = {*(f"{stem}.{fmt}" for stem in STEMS for fmt in ("png", "pdf")), "summary.md"}
SMALL_FILES = {*(f"{stem}.{fmt}" for stem in FIGURES for fmt in ("png", "pdf")), "summary.md"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny spec with 3 replicates (intervals) and four analyzers, run once for the
    module: (uri, finished)."""
    folder = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    data = {**TINY, "experiment": {**TINY["experiment"], "replicates": 3},
            "tracking": {"log_models": "none"}, "analyzers": ANALYZERS,
            "controls": {"reinit": True, "random_prune": True, "signed_constant": True,
                         "oneshot": True}}
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
    for stem in STEMS:
        png, pdf = (out / f"{stem}.png").read_bytes(), (out / f"{stem}.pdf").read_bytes()
        assert png.startswith(PNG) and len(png) > 10_000, stem
        assert pdf.startswith(PDF) and len(pdf) > 5_000, stem
        about = Image.open(out / f"{stem}.png").text  # the hash is in the metadata only
        assert about["Title"].startswith("tiny: ") and finished.spec_hash in about["Description"]
    summary = (out / "summary.md").read_text()
    rows = table_rows(summary)
    assert [row[0] for row in rows] == ["0", "1", "2"]
    assert rows[0][1] == "100" and float(rows[2][1]) < float(rows[1][1]) < 100
    assert rows[0][3] == "–"  # no control at level 0
    ticket = finished.summary[1]["ticket/early_stop_test_accuracy"]
    mean, low, high = (float(x) for x in re.findall(r"[\d.]+", rows[1][2]))
    assert mean == pytest.approx(100 * ticket, abs=0.006) and low < mean < high
    assert "IoU across replicates" in summary and "paired t-test" in summary
    client = MlflowClient(uri)
    root = {a.path for a in client.list_artifacts(finished.parent_run_id)}
    assert {f for f in REPORT_FILES if not f.endswith(".pdf")} <= root
    logged = {Path(a.path).name for a in client.list_artifacts(finished.parent_run_id, "report")}
    assert logged == {f for f in REPORT_FILES if f.endswith(".pdf")}
    assert "ticket −" in result.output and "p=" in result.output  # the terminal's table


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
    assert {p.name for p in folders[0].iterdir()} == SMALL_FILES
    assert f"report: {Path('reports') / folders[0].name}/" in result.output
    summary = (folders[0] / "summary.md").read_text()
    assert len(table_rows(summary)) == 2
    assert "One replicate: no interval or test exists" in summary
    assert "[" not in "".join(cell for row in table_rows(summary) for cell in row)

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
    tiny["report"] = {"formats": ["svg"], "style": "talk", "dpi": 300, "width": 3.5,
                      "interval": "bootstrap", "test": "wilcoxon", "control_levels": [1]}
    assert spec_hash(build_spec(tiny, registry)) == plain
    for section, words in (({"levels": [3]}, "beyond pruning.levels"),
                           ({"levels": [-1]}, "levels >= 0"), ({"levels": []}, "non-empty"),
                           ({"control_levels": [3]}, "report.control_levels: level 3"),
                           ({"formats": []}, "at least one"), ({"formats": ["jpg"]}, "formats"),
                           ({"test": "anova"}, "test"), ({"confidence": 1.5}, "confidence")):
        tiny["report"] = section
        with pytest.raises(SpecError, match=words):
            build_spec(tiny, registry)


@pytest.fixture(scope="module")
def drawn(experiment, tmp_path_factory):
    """Report the experiment once, keeping every figure's axes by file stem."""
    from lth_suite.report import analyzer_figures, figures, writer

    kept = {}

    def keep(fig, stem, *args, **kwargs):
        kept[stem.name] = fig.axes[0]
        return original(fig, stem, *args, **kwargs)

    original = figures.save
    uri, finished = experiment
    reader = open_reader(uri)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "save", keep)
        patch.setattr(analyzer_figures, "save", keep)
        result = writer.write_report(reader, reader.run(finished.parent_run_id),
                                     tmp_path_factory.mktemp("drawn"), log=False,
                                     settings=Report(formats=["png"]))  # PDFs: test above
    return kept, result


def legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_figures_show_means_intervals_and_what_each_branch_means(drawn):
    kept, result = drawn
    ax = kept["accuracy_vs_weights"]
    assert ax.get_title() == "tiny: accuracy as weights are pruned"  # the name, no hash
    # the controls by their plugins' descriptions, those that vary the weights together
    assert legend(ax) == [
        "ticket: pruned mask, weights rewound to their initialisation",
        "reinit: same mask, fresh random init (Frankle & Carbin 2019)",
        "signed_constant: same mask, each weight +-std of its layer's init by the init's "
        "sign (Zhou et al. 2019)",
        "random_prune: random mask, same per-layer density (Frankle & Carbin 2019)",
        "oneshot: the trained dense network pruned once to the ticket's per-layer counts "
        "(Frankle & Carbin 2019)"]
    assert ax.get_legend().get_title().get_text() == "mean of 3 replicates, 95% t interval"
    ticket_line = ax.get_lines()[0]
    cells = result.data.cells["ticket"]
    means = [100 * sum(cells[lv].accuracy) / 3 for lv in sorted(cells)]
    assert list(ticket_line.get_ydata()) == pytest.approx(means)
    assert ax.get_ylim()[1] <= 100.5
    stats = result.statistics[1].accuracy["ticket"]
    bars = ax.containers[0].lines[2][0].get_segments()  # the ticket's error bars
    assert bars[1][:, 1] == pytest.approx([stats.low, stats.high])
    assert ax.get_xlim()[0] > ax.get_xlim()[1]  # sparser to the right


def test_accuracy_vs_iteration_is_zoomed_and_shows_the_controls(drawn):
    kept, result = drawn
    ax = kept["accuracy_vs_iteration"]
    labels = legend(ax)
    sparsest = weights_label(result, 2)
    controls = ("reinit", "signed_constant", "random_prune", "oneshot")
    assert labels[-4:] == [f"{control}, {sparsest}% of weights" for control in controls]
    assert len(ax.get_lines()) == len(labels) == 3 + 4  # ticket at levels 0, 1, 2; 4 controls
    drawn_values = [v for line in ax.get_lines() for s, v in zip(*line.get_data()) if s >= 20]
    low, high = ax.get_ylim()
    assert low <= min(drawn_values) and max(drawn_values) <= high
    assert (low, high) != (0.0, 100.0) and high - low < 100


def weights_label(result, level: int) -> str:
    from lth_suite.report.numbers import weights_text

    return weights_text(result.data.cells["ticket"][level].percent)


def test_early_stops_at_the_last_evaluation_are_marked(drawn):
    kept, result = drawn
    ax = kept["early_stop_vs_weights"]
    last = result.data.last_evaluation
    assert last == 40  # the tiny spec trains 40 iterations, evaluating every 20
    at_end = [cell for cells in result.data.cells.values() for cell in cells.values()
              if max(cell.iteration) >= last]
    marked = "last evaluation" in " ".join(legend(ax))
    assert marked
    summary = (result.folder / "summary.md").read_text()
    assert ("†" in summary) == bool(at_end)


def test_analyzer_figures_plot_what_the_analyzers_logged(drawn):
    kept, result = drawn
    density = kept["analysis_layer_density"]
    layers = result.data.analyses["layer_density"]
    assert sorted(legend(density)) == sorted(layers)
    assert density.get_yscale() == "log"
    line = density.get_lines()[legend(density).index("fc1.weight")]
    assert list(line.get_ydata()) == pytest.approx(
        [100 * layers["fc1.weight"][lv] for lv in sorted(layers["fc1.weight"])])
    similarity = kept["analysis_mask_similarity"]
    assert {"replicate vs replicate", "replicate vs replicate, chance"} <= set(legend(similarity))
    assert "kept" in " ".join(legend(kept["analysis_init_stats"]))
    heatmap = kept["mask_similarity"]
    assert "chance" in heatmap.get_title()
    assert len(heatmap.texts) == (3 * 2) ** 2  # replicates x pruned levels, every cell


def test_an_instability_figure_draws_the_barrier(drawn, tmp_path):
    from dataclasses import replace

    from lth_suite.report.analyzer_figures import analyzer_figures

    _, result = drawn
    barrier = {"barrier": {1: 0.02, 2: 0.05}, "endpoint_error": {1: 0.1, 2: 0.12}}
    data = replace(result.data, analyses={"instability": barrier},
                   settings=Report(formats=["svg"]))
    written = analyzer_figures(data, tmp_path)
    assert [p.name for p in written] == ["analysis_instability.svg"]
    svg = written[0].read_text()
    assert "instability: error barrier" in svg and "error at the endpoints" in svg


def test_statistics_are_logged_per_level_and_the_run_describes_itself(experiment, tmp_path):
    uri, finished = experiment
    reader = open_reader(uri)
    for _ in range(2):  # a report written twice logs its statistics once
        write_report(reader, reader.run(finished.parent_run_id), tmp_path / "r",
                     settings=Report(formats=["png"]))
    client = MlflowClient(uri)
    parent = client.get_run(finished.parent_run_id)
    # every control; at level 1 oneshot is the ticket itself (one pruning of the dense
    # network), so the differences are all 0 and there is no test to log
    tested = {"reinit": [1, 2], "random_prune": [1, 2], "signed_constant": [1, 2], "oneshot": [2]}
    for control, steps in tested.items():
        history = client.get_metric_history(parent.info.run_id, f"ticket_vs_{control}/p_value")
        assert sorted(m.step for m in history) == steps, control
        assert all(0 <= m.value <= 1 for m in history)
        spread = client.get_metric_history(parent.info.run_id,
                                           f"{control}/early_stop_test_accuracy_ci_high")
        assert sorted(m.step for m in spread) == [1, 2], control
    low = client.get_metric_history(parent.info.run_id, "ticket/early_stop_test_accuracy_ci_low")
    mean = dict((m.step, m.value) for m in client.get_metric_history(
        parent.info.run_id, "ticket/early_stop_test_accuracy"))
    assert [m.step for m in low] == [0, 1, 2] and all(m.value < mean[m.step] for m in low)
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("# tiny: lottery ticket report") and "ticket − reinit" in note
    assert "ticket − signed_constant" in note and "ticket − oneshot" in note
    weights, mask = note.index("change the starting weights"), note.index("change the mask")
    assert weights < note.index("- `signed_constant`: same mask") < mask
    assert mask < note.index("- `oneshot`: the trained dense network")
    experiment_tags = client.get_experiment(parent.info.experiment_id).tags
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"
