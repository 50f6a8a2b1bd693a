"""Controls from plugins train alike wherever the units run: in process, on local workers,
one unit at a time from the store, and after an interruption, resumed."""

from __future__ import annotations

import copy
import sys

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.api import PluginFailure
from lth_suite.launch.execute import ExperimentPlan, execute, run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY, FailingControl
from lth_suite.tracking import open_tracker
from tests.parallel.test_launchers import UnitsInOrder, tiny_spec

CONTROLS = {"reinit": False, "random_prune": True, "signed_constant": True, "oneshot": True,
            "inverted": True, "rewind_step": {"at": "20it"}}  # the tiny spec trains 40it


def branches(finished) -> dict:
    """(replicate, level, branch) -> (mask, history) of a finished experiment."""
    return {(b.replicate, b.level, b.branch): (b.mask, b.result.history)
            for event in finished.levels for b in event.branches}


def assert_same(expected: dict, actual: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for key, (mask, history) in expected.items():
        assert actual[key][0].equals(mask), key
        assert actual[key][1] == history, key


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The tiny experiment with controls of several plugins' kinds, trained in process."""
    data = tiny_spec(copy.deepcopy(TINY), launcher="local")
    data["controls"] = CONTROLS
    plugins = load_plugins(installed=False)
    uri = f"sqlite:///{tmp_path_factory.mktemp('controls') / 'alone.db'}"
    return data, branches(run_experiment(build_spec(data, plugins.registry), plugins, uri))


def test_local_workers_train_the_controls_as_in_process(in_process, plugins, tmp_path):
    data, expected = in_process
    spec = build_spec({**data, "launcher": {"name": "local", "workers": 2}}, plugins.registry)
    pooled = run_experiment(spec, plugins, f"sqlite:///{tmp_path / 'pooled.db'}")
    assert_same(expected, branches(pooled))


def test_units_from_the_store_train_the_controls_as_in_process(in_process, plugins, tmp_path):
    data, expected = in_process
    spec = build_spec(data, plugins.registry)
    uri = f"sqlite:///{tmp_path / 'units.db'}"
    result = execute([ExperimentPlan(spec, open_tracker(uri))], plugins, UnitsInOrder(), uri)[0]
    assert_same(expected, branches(result.finished))


@pytest.fixture
def failing(monkeypatch):
    """A control failing at level 2 until told not to, and the plugins with it."""
    control = FailingControl(level=2)
    module = control.plugin()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return control, load_plugins(extra=[module], installed=False)


def test_a_failed_control_is_resumed_and_the_others_restored(in_process, failing, tmp_path):
    control, flaky_plugins = failing
    data, expected = in_process
    spec = build_spec({**data, "controls": {**CONTROLS, "flaky": True}}, flaky_plugins.registry)
    uri = f"sqlite:///{tmp_path / 'flaky.db'}"
    with pytest.raises(PluginFailure, match="control 'flaky' from plugin .* raised RuntimeError"):
        run_experiment(spec, flaky_plugins, uri)
    control.broken = False
    resumed = run_experiment(spec, flaky_plugins, uri, resume=spec_key(uri))
    found = branches(resumed)
    assert all(found[(0, level, "flaky")][0].equals(found[(0, level, "ticket")][0])
               for level in (1, 2))
    assert_same(expected, {k: v for k, v in found.items() if k[2] != "flaky"})
    assert found[(0, 2, "rewind_step")][1][0]["iteration"] == 20  # resumed from the store
    restored = {(b.level, b.branch) for event in resumed.levels for b in event.branches
                if b.restored}
    assert (1, "oneshot") in restored and (2, "flaky") not in restored


def spec_key(uri: str) -> str:
    """The id of the store's only parent run."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return next(r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags)
