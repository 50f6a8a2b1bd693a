"""The ``local`` launcher with workers: each level's networks trained side by side in
worker processes of this machine, the driver recording them (the only writer to a SQLite
store).

Faults come from a test architecture, installed as a dist-info folder on ``sys.path``
(which spawned workers inherit): it kills or stalls the worker process that trains a
pruned network, never the driver.
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.builtin.launchers import LocalLauncher, LocalWorkers, local_launcher
from lth_suite.builtin.launchers.local import LocalParams
from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec
from tests.parallel.test_launchers import (
    expected_units,
    finished_once,
    invoke,
    invoke_interrupted,
    parent_of,
    runs_of,
    tiny_spec,
)

WORKER_FAULT = """
import os
import signal
import time
from pathlib import Path

from lth_suite.builtin.architectures import MLPParams
from lth_suite.plugins.hookspecs import hookimpl


class FaultParams(MLPParams):
    driver: int = 0  # the launching process: never faulted
    marker: str = ""
    mode: str = "kill"  # kill | sleep | nan | memory | slow (every forward in a worker: 50 ms)


def fault_mlp(params, info):
    from lth_suite.builtin.architectures.nets import MLP

    class FaultMLP(MLP):
        def forward(self, x):
            if params.mode == "slow" and os.getpid() != params.driver:
                time.sleep(0.05)
                return super().forward(x)
            if params.mode == "nan" and not self.training:  # a training step's loss, not an
                return super().forward(x)  # evaluation's, makes a training diverge
            marker = Path(params.marker)
            pruned = bool((self.fc1.weight == 0).any())
            if pruned and os.getpid() != params.driver and not marker.exists():
                marker.write_text(str(os.getpid()))
                if params.mode == "nan":  # this training diverges
                    return super().forward(x) * float("nan")
                if params.mode == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if params.mode == "memory":  # a memory limit just above what it holds
                    import resource
                    import torch
                    with open("/proc/self/statm") as statm:
                        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
                    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
                    resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20), hard))
                    torch.ones(1 << 28)  # 1 GiB: beyond it
                for _ in range(1200):  # until stopped
                    time.sleep(0.1)
            return super().forward(x)

    return FaultMLP(params, info)


@hookimpl
def lth_register_architectures(register):
    register("fault_mlp", fault_mlp, FaultParams, "an MLP whose workers fail once pruned")
"""


def write_worker_fault_plugin(site: Path) -> None:
    """The fault architecture as a module plus a dist-info folder in ``site``."""
    (site / "lth_test_worker_faults.py").write_text(textwrap.dedent(WORKER_FAULT))
    info = site / "lth_test_worker_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lth-test-worker-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lth_suite]\nfaults = lth_test_worker_faults\n")


def workers(count: object = 2) -> dict:
    return {"name": "local", "workers": count}


def machine(monkeypatch, cores: int, load: float, memory_gib: float | None) -> None:
    """This machine, as the local launcher sees it: cores, load average, memory."""
    from lth_suite.builtin.launchers import capacity

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(capacity, "cpu_quota", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(capacity, "available_memory",
                        lambda: None if memory_gib is None else int(memory_gib * (1 << 30)))


def test_workers_param_chooses_in_process_or_a_pool(tiny, registry, monkeypatch):
    machine(monkeypatch, cores=4, load=0.0, memory_gib=16)
    assert isinstance(local_launcher(LocalParams()), LocalLauncher)  # the default: in process
    assert local_launcher(LocalParams(workers=3)) == LocalWorkers(3)
    assert local_launcher(LocalParams(workers="auto")) == LocalWorkers(4)
    with pytest.raises(SpecError, match="launcher.workers"):
        build_spec(tiny_spec(tiny, launcher=workers(0)), registry)


@pytest.mark.parametrize("cores, load, memory_gib, asked, started, words", [
    (2, 0.0, 16, 100000, 2, "100000 cut to 2 (2 usable core(s)"),  # no 100000 processes
    (64, 0.0, 1.6, 100, 3, "cut to 3 (64 usable core(s), 1.6 GiB memory"),
    (4, 4.6, 16, "auto", 1, "auto: trainings run in this process (0 of 4 core(s) free at load 4.6"),
    (8, 2.2, 16, "auto", 6, "auto: trainings run on 6 worker processes (6 of 8"),
    (8, 0.0, 1.1, "auto", 2, "on 2 worker processes"),  # memory for 2
    (2, 10.2, 16, "auto", 1, "in this process (0 of 2 core(s) free at load 10.2"),
    (4, 0.0, None, 3, 3, None),  # unknown memory: the cores alone
])
def test_workers_are_cut_to_the_free_cores_and_memory_saying_why(
        monkeypatch, cores, load, memory_gib, asked, started, words):
    machine(monkeypatch, cores, load, memory_gib)
    launcher = local_launcher(LocalParams(workers=asked))
    assert (launcher.workers if isinstance(launcher, LocalWorkers) else 1) == started
    if words is None:
        assert launcher.note is None
    else:
        assert words in launcher.note, launcher.note


def test_workers_give_the_in_process_results_in_a_sqlite_store(tiny, plugins, tmp_path):
    data = tiny_spec(tiny, replicates=2, launcher=workers(2))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # refused by ray; the driver writes here
    pooled = run_experiment(build_spec(data, plugins.registry), plugins, uri)
    alone = run_experiment(build_spec({**data, "launcher": "local"}, plugins.registry), plugins,
                           f"sqlite:///{tmp_path / 'alone.db'}")
    assert pooled.summary == alone.summary
    for one, two in zip(alone.levels, pooled.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch)
            assert a.mask.equals(b.mask) and a.result.history == b.result.history
            assert all(a.result.state[k].equal(b.result.state[k]) for k in a.result.state)
    _, children = runs_of(uri, "tiny")
    assert set(finished_once(children, pooled.parent_run_id)) == expected_units(2, 2)
    assert len(children) == 14
    assert MlflowClient(uri).get_run(pooled.parent_run_id).info.status == "FINISHED"


@pytest.fixture
def fault_plugin(tmp_path_factory, monkeypatch) -> Iterator[None]:
    """The fault plugin importable here and in spawned workers, and the only one loaded."""
    site = tmp_path_factory.mktemp("fault-plugin")
    write_worker_fault_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "lth-test-worker-faults")
    yield


def faulty(tiny: dict, marker: Path, mode: str) -> dict:
    """The tiny spec on two workers, its network failing in the first worker that trains
    a pruned network."""
    tiny["model"] = {"name": "fault_mlp", "hidden": [32, 16], "driver": os.getpid(),
                     "marker": str(marker), "mode": mode}
    return tiny_spec(tiny, launcher=workers(2))


def test_a_dead_worker_fails_its_unit_and_resume_trains_it(tiny, write_spec, tmp_path,
                                                           fault_plugin):
    tiny["experiment"]["name"] = "dead-worker"
    marker = tmp_path / "killed.marker"
    data = faulty(tiny, marker, "kill")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("run", write_spec(data), "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    assert re.search(r"r0-level1-(ticket|reinit|random_prune) failed: its worker process "
                     r"died \(exit code -9: killed by SIGKILL", result.output), result.output
    parent = parent_of(uri, "dead-worker")
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error:") and sum(line.startswith("error:") for line in lines) == 1
    assert f"parent run {parent} ended FAILED; resume with: lth-suite resume {parent}" in lines[-1]
    client = MlflowClient(uri)
    assert client.get_run(parent).info.status == "FAILED"
    _, children = runs_of(uri, "dead-worker")
    statuses = {c.info.run_name: c.info.status for c in children}
    assert statuses["r0-level0-ticket"] == "FINISHED" and "RUNNING" not in statuses.values()
    assert "FAILED" in statuses.values()  # the dead training's run, ended by the driver

    resumed = invoke("resume", parent, "--tracking-uri", uri)
    assert resumed.exit_code == 0, resumed.output
    _, children = runs_of(uri, "dead-worker")
    assert set(finished_once(children, parent)) == expected_units(1, 2)
    assert "RUNNING" not in {c.info.status for c in children}
    assert client.get_run(parent).info.status == "FINISHED"


def test_a_worker_out_of_memory_is_one_line_naming_the_parent_and_resume(
        tiny, write_spec, tmp_path, fault_plugin):
    tiny["experiment"]["name"] = "worker-memory"
    tiny["pruning"]["levels"] = 1
    data = faulty(tiny, tmp_path / "memory.marker", "memory")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("run", write_spec(data), "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    parent = parent_of(uri, "worker-memory")
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "worker process ran out of memory" in errors[0], result.output
    assert f"resume with: lth-suite resume {parent} --tracking-uri {uri}" in errors[0]
    _, children = runs_of(uri, "worker-memory")
    assert "RUNNING" not in {c.info.status for c in children}
    assert MlflowClient(uri).get_run(parent).info.status == "FAILED"


def test_ctrl_c_stops_the_workers_and_ends_the_runs_killed(tiny, write_spec, tmp_path,
                                                           fault_plugin):
    tiny["experiment"]["name"] = "interrupted-workers"
    marker = tmp_path / "sleeping.marker"
    data = faulty(tiny, marker, "sleep")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.perf_counter()  # Ctrl-C once a worker sleeps inside a pruned training
    result = invoke_interrupted(marker, 0.3, "run", write_spec(data), "--tracking-uri", uri)
    assert result.exit_code == 130, result.output
    assert time.perf_counter() - started < 100  # the sleeping worker was stopped, not awaited
    worker = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # gone
    parent = parent_of(uri, "interrupted-workers")
    assert MlflowClient(uri).get_run(parent).info.status == "KILLED"
    _, children = runs_of(uri, "interrupted-workers")
    assert "RUNNING" not in {c.info.status for c in children}  # resuming: as for a dead worker


def test_a_workers_evaluations_reach_the_store_while_it_trains(tiny, plugins, tmp_path,
                                                                fault_plugin, monkeypatch):
    from lth_suite.plugins.manager import load_plugins
    from lth_suite.tracking import writer
    from tests.lottery.test_live_metrics import Peek

    monkeypatch.setattr(writer, "LIVE_EVERY", 0.0)  # send every evaluation at once
    tiny["pruning"]["levels"], tiny["controls"] = 1, {"reinit": False, "random_prune": False}
    data = faulty(tiny, tmp_path / "unused.marker", "slow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    peek = Peek(uri, first=30, before=40)
    loaded = load_plugins()
    finished = run_experiment(build_spec(data, loaded.registry), loaded, uri, peek)
    assert peek.seen == [0, 20]  # logged by the driver while the worker was past iteration 30
    ticket = finished.levels[0].branches[0]
    steps = [m.step for m in MlflowClient(uri).get_metric_history(ticket.run_id, "val_loss")]
    assert sorted(steps) == [0, 20, 40]  # each evaluation once


def test_a_failed_experiment_stops_its_trainings_and_the_next_one_uses_the_pool(
        tiny, plugins, tmp_path):
    from lth_suite.launch.execute import ExperimentPlan, execute
    from lth_suite.tracking import open_tracker

    broken = tiny_spec(tiny, replicates=2, launcher=workers(2))
    broken["training"] = {**broken["training"], "lr": 1e12}  # diverges at once
    sane = tiny_spec(tiny, replicates=2, launcher=workers(2))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plans = [ExperimentPlan(build_spec(data, plugins.registry), open_tracker(uri))
             for data in (broken, sane)]
    launcher = LocalWorkers(2)
    first, second = execute(plans, plugins, launcher, uri)
    assert first.error is not None and "diverged" in str(first.error)
    assert launcher.pool.workers == []  # stopped with the launcher
    alone = run_experiment(build_spec({**sane, "launcher": "local"}, plugins.registry),
                           plugins, f"sqlite:///{tmp_path / 'alone.db'}")
    assert second.error is None and second.finished.summary == alone.summary
    client = MlflowClient(uri)
    statuses = {client.get_run(p.parent_id).info.status for p in plans}
    assert statuses == {"FAILED", "FINISHED"}


def test_on_divergence_skip_with_workers_skips_the_control_or_stops_the_replicate(
        tiny, plugins, tmp_path, fault_plugin):
    from lth_suite.plugins.manager import load_plugins

    tiny["experiment"]["name"] = "diverging"
    tiny["training"]["on_divergence"] = "skip"
    data = faulty(tiny, tmp_path / "nan.marker", "nan")
    data["experiment"]["replicates"] = 2
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    loaded = load_plugins()
    finished = run_experiment(build_spec(data, loaded.registry), loaded, uri)
    _, children = runs_of(uri, "diverging")
    failed = sorted(c.info.run_name for c in children if c.info.status == "FAILED")
    assert "RUNNING" not in {c.info.status for c in children}
    trained = {(b.replicate, b.level, b.branch) for level in finished.levels
               for b in level.branches}
    if any(name.endswith("ticket") for name in failed):  # the ticket diverged first
        replicate = int(failed[0][1])
        assert failed == [f"r{replicate}-level1-{b}" for b in
                          ("random_prune", "reinit", "ticket")]  # its controls end with it
        assert not any(r == replicate and level >= 1 for r, level, _ in trained)
        assert len(trained) == 2 + 3 + 3  # level 0: both; then the other replicate's 3 + 3
    else:  # a control diverged: only it is left out
        assert len(failed) == 1 and "level1" in failed[0]
        assert len(trained) == 2 + 2 * 3 * 2 - 1


def test_a_dry_run_starts_no_worker(tiny, write_spec, tmp_path):
    import multiprocessing

    data = tiny_spec(tiny, launcher=workers(2))
    result = invoke("run", write_spec(data), "--dry-run", "--tracking-uri",
                    f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.exit_code == 0, result.output
    assert not [p for p in multiprocessing.active_children() if p.name == "lth-suite-worker"]


def test_a_worker_that_dies_between_levels_fails_the_next_training_naming_it(
        tiny, plugins, tmp_path):
    from lth_suite.errors import LthError
    from lth_suite.launch.execute import ExperimentPlan, execute
    from lth_suite.lottery.progress import SilentProgress
    from lth_suite.tracking import open_tracker

    launcher = LocalWorkers(2)

    class KillAfterLevel0(SilentProgress):
        def level_done(self, level, row):
            if level == 0:  # both workers idle now: one of them dies
                victim = launcher.pool.workers[0].process
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()

    spec = build_spec(tiny_spec(tiny, launcher=workers(2)), plugins.registry)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = execute([ExperimentPlan(spec, open_tracker(uri))], plugins, launcher, uri,
                     lambda trainings: KillAfterLevel0())[0]
    assert isinstance(result.error, LthError)
    assert "level1" in str(result.error) and "its worker process died" in str(result.error)
    _, children = runs_of(uri, "tiny")
    assert "RUNNING" not in {c.info.status for c in children}
