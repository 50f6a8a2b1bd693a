"""The repository's synflow spec runs end to end through lth-suite's Python API."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import load_spec

SPEC = Path(__file__).resolve().parents[3] / "specs" / "synflow_digits.yaml"


@pytest.fixture
def spec_path() -> Path:
    if not SPEC.exists():
        pytest.skip("specs/synflow_digits.yaml lives in the lth-suite repository")
    return SPEC


def test_synflow_spec_runs_end_to_end(plugins, spec_path, tracking_uri):
    first = spec_path.read_text().splitlines()[0]
    assert first == "# pip install ./plugins/lth-suite-pai && lth-suite run specs/synflow_digits.yaml"
    # the spec as written, trained shorter so the test stays quick
    spec = load_spec(spec_path, plugins.registry, ["training.duration=40it",
                                                   "training.eval_every=20",
                                                   "pruning.levels=2",
                                                   "tracking.log_models=none"])
    assert spec.pruning.criterion.name == "synflow"
    assert spec.pruning.criterion.params == {"at": "init", "iterations": 100}
    finished = run_experiment(spec, plugins, tracking_uri)

    densities = [row["density"] for row in finished.summary]
    assert densities[0] == 1.0 and densities[0] > densities[1] > densities[2]
    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(children) == 1 + 2 * 2  # dense; ticket + random_prune
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert parents[0].data.params["spec.pruning.criterion.name"] == "synflow"


def test_loading_the_plugin_imports_no_torch():
    """The params models live apart from the criteria, which are registered lazily."""
    from lth_suite.testing import heavy_imports

    assert heavy_imports("""
        import lth_suite_pai.plugin
        from lth_suite.plugins.manager import load_plugins
        registry = load_plugins(extra=[lth_suite_pai.plugin], installed=False).registry
        for name in ("snip", "grasp", "synflow"):
            registry.get("criterion", name)
    """) == []


def test_snip_with_the_random_labels_control(plugins, tracking_uri):
    """SNIP reads the labels: with them shuffled (Su et al. 2020) it keeps another mask of
    the ticket's per-layer counts; magnitude, which reads no data, is refused."""
    from lth_suite.errors import SpecError
    from lth_suite.spec.loading import build_spec
    from lth_suite.testing import TINY

    data = {**TINY, "pruning": {"criterion": "snip", "levels": 1},
            "controls": {"reinit": False, "random_prune": False, "random_labels": True}}
    finished = run_experiment(build_spec(data, plugins.registry), plugins, tracking_uri)
    level = finished.levels[1]
    ticket, shuffled = level.of("ticket")[0].mask, level.of("random_labels")[0].mask
    assert shuffled.kept() == ticket.kept() and not shuffled.equals(ticket)
    from lth_suite.lottery.experiment import prepare
    with pytest.raises(SpecError, match="controls.random_labels: random_labels needs a data-driven"):
        prepare(build_spec({**data, "pruning": {"levels": 1}}, plugins.registry), plugins)
