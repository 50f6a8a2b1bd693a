"""The ``local`` launcher with workers: units side by side in worker processes of this
machine, the driver the only writer to a SQLite store.

Faults come from the test plugin of ``test_launchers`` (criterion ``fault``), installed
as a dist-info folder on ``sys.path``, which spawned workers inherit.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.builtin.launchers import LocalLauncher, LocalWorkers, local_launcher
from lth_suite.builtin.launchers.local import LocalParams
from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec

from .test_launchers import (
    expected_units,
    finished_once,
    invoke,
    parent_of,
    runs_of,
    tiny_spec,
    write_fault_plugin,
)


def workers(count: object = 2) -> dict:
    return {"name": "local", "workers": count}


def test_workers_param_chooses_in_process_or_a_pool(tiny, registry, monkeypatch):
    assert isinstance(local_launcher(LocalParams()), LocalLauncher)  # the default: in process
    assert local_launcher(LocalParams(workers=3)) == LocalWorkers(3)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert local_launcher(LocalParams(workers="auto")) == LocalWorkers(4)
    with pytest.raises(SpecError, match="launcher.workers"):
        build_spec(tiny_spec(tiny, launcher=workers(0)), registry)


def test_workers_give_the_in_process_results_in_a_sqlite_store(tiny, plugins, tmp_path):
    data = tiny_spec(tiny, replicates=2, launcher=workers(2))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # refused by ray; the driver writes here
    pooled = run_experiment(build_spec(data, plugins.registry), plugins, uri)
    alone = run_experiment(build_spec({**data, "launcher": "local"}, plugins.registry), plugins,
                           f"sqlite:///{tmp_path / 'alone.db'}")
    assert pooled.summary == alone.summary
    for one, two in zip(alone.levels, pooled.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch) and b.restored
            assert a.mask.equals(b.mask) and a.result.history == b.result.history
    _, children = runs_of(uri, "tiny")
    assert set(finished_once(children, pooled.parent_run_id)) == expected_units(2, 2)
    assert len(children) == 14
    assert MlflowClient(uri).get_run(pooled.parent_run_id).info.status == "FINISHED"


def test_a_deep_unit_restores_only_the_dense_and_the_latest_ticket(tiny, plugins, tmp_path):
    tiny["pruning"]["levels"] = 4  # units at levels 3 and 4 skip the levels between
    tiny["controls"] = {"reinit": False, "random_prune": True}
    data = tiny_spec(tiny, launcher=workers(2))
    pooled = run_experiment(build_spec(data, plugins.registry), plugins,
                            f"sqlite:///{tmp_path / 'pooled.db'}")
    alone = run_experiment(build_spec({**data, "launcher": "local"}, plugins.registry), plugins,
                           f"sqlite:///{tmp_path / 'alone.db'}")
    assert pooled.summary == alone.summary and len(pooled.levels) == 5
    for one, two in zip(alone.levels, pooled.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert a.mask.equals(b.mask) and a.result.history == b.result.history


@pytest.fixture
def fault_plugin(tmp_path_factory, monkeypatch) -> Iterator[None]:
    """The fault plugin importable here and in spawned workers, and the only one loaded."""
    site = tmp_path_factory.mktemp("fault-plugin")
    write_fault_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "lth-test-faults")
    yield


def test_a_dead_worker_fails_its_unit_and_resume_trains_it(tiny, write_spec, tmp_path,
                                                           fault_plugin):
    tiny["experiment"]["name"] = "dead-worker"
    marker = tmp_path / "killed.marker"
    data = tiny_spec(tiny, launcher=workers(2), marker=str(marker), level=1, mode="kill")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("run", write_spec(data), "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    assert "r0-level1-ticket failed: its worker process died" in result.output
    parent = parent_of(uri, "dead-worker")
    client = MlflowClient(uri)
    assert client.get_run(parent).info.status == "FAILED"
    _, children = runs_of(uri, "dead-worker")
    assert {c.info.run_name: c.info.status for c in children} == {
        "r0-level0-ticket": "FINISHED"}  # the dead unit wrote nothing

    resumed = invoke("resume", parent, "--tracking-uri", uri)
    assert resumed.exit_code == 0, resumed.output
    _, children = runs_of(uri, "dead-worker")
    assert set(finished_once(children, parent)) == expected_units(1, 2) and len(children) == 7
    assert client.get_run(parent).info.status == "FINISHED"


def test_ctrl_c_stops_the_workers_and_ends_the_runs_killed(tiny, write_spec, tmp_path,
                                                           fault_plugin):
    tiny["experiment"]["name"] = "interrupted-workers"
    marker = tmp_path / "sleeping.marker"
    data = tiny_spec(tiny, launcher=workers(2), marker=str(marker), level=1, mode="sleep")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    finished = threading.Event()

    def interrupt() -> None:  # Ctrl-C once a worker sleeps inside r0-level1-ticket
        while not marker.exists():
            if finished.wait(0.1):
                return
        time.sleep(0.3)
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        result = invoke("run", write_spec(data), "--tracking-uri", uri)
    finally:
        finished.set()
        watcher.join()
    assert result.exit_code == 130, result.output
    assert time.perf_counter() - started < 100  # the sleeping worker was stopped, not awaited
    worker = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # gone
    parent = parent_of(uri, "interrupted-workers")
    assert MlflowClient(uri).get_run(parent).info.status == "KILLED"
    _, children = runs_of(uri, "interrupted-workers")
    assert "RUNNING" not in {c.info.status for c in children}  # resuming: as for a dead worker


