"""Launchers: the unit graph, `local` (today's behaviour), and `ray` against a real server.

The Ray tests share one local Ray instance with 2 CPUs and one `mlflow server` (sqlite
behind it, artifacts proxied into a temporary folder). Faults come from a tiny installed
plugin (criterion `fault`, a dist-info folder on the workers' PYTHONPATH): on its first
call at a chosen level it kills its own process, raises, or sleeps until cancelled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.api import CONTROLS
from lth_suite.cli import app
from lth_suite.errors import LthError
from lth_suite.launch.execute import ExperimentPlan, check_tracking_uri, execute, run_experiment, unit_graph
from lth_suite.lottery.runner import LotteryRunner
from lth_suite.parallel.units import Launcher, Unit, UnitGraph, run_in_order
from lth_suite.pruning.masks import Mask
from lth_suite.spec.loading import build_spec, spec_hash
from lth_suite.tracking import open_tracker

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed: "
                               "pip install 'lth-suite[ray]' runs these tests")
BRANCHES = ("ticket", "reinit", "random_prune")

FAULT_PLUGIN = '''
"""Test plugin: criterion `fault`, magnitude pruning that fails once at a chosen level."""
import os
import signal
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from lth_suite.builtin.criteria import magnitude
from lth_suite.plugins.hookspecs import hookimpl
from lth_suite.plugins.registry import NoParams


class FaultParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marker: str = ""
    level: int = 1
    mode: str = "kill"  # kill | raise | sleep


def fault(params):
    prune = magnitude(NoParams())

    def criterion(request):
        marker = Path(params.marker)
        if request.level == params.level and params.marker and not marker.exists():
            marker.write_text(str(os.getpid()))
            if params.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if params.mode == "raise":
                raise RuntimeError("injected fault")
            for _ in range(1200):  # until cancelled
                time.sleep(0.1)
        return prune(request)

    return criterion


@hookimpl
def lth_register_criteria(register):
    register("fault", fault, FaultParams, "magnitude, failing once")
'''


def write_fault_plugin(site: Path) -> None:
    """Install the fault plugin into ``site`` as a module plus a dist-info folder, so that
    entry-point discovery finds it wherever ``site`` is on the path."""
    (site / "lth_test_faults.py").write_text(textwrap.dedent(FAULT_PLUGIN))
    info = site / "lth_test_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lth-test-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lth_suite]\nfaults = lth_test_faults\n")



def invoke(*args: object):
    """The CLI in process; an exception escaping it fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}\n{result.output}") \
            from result.exception
    return result


def invoke_interrupted(marker: Path, delay: float, *args: object):
    """``invoke`` the CLI, sending this process Ctrl-C ``delay`` s after ``marker`` appears
    (a fault plugin writes it where it stalls); never once the command has ended."""
    finished = threading.Event()

    def interrupt() -> None:
        while not marker.exists():
            if finished.wait(0.1):
                return  # the run ended without reaching the fault: never interrupt later
        time.sleep(delay)
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    try:
        return invoke(*args)
    finally:
        finished.set()
        watcher.join()


def run_interrupted(marker: Path, delay: float, *args: object, env: dict[str, str]):
    """The CLI in a process of its own, sent Ctrl-C ``delay`` s after ``marker`` appears (a
    fault plugin writes it where it stalls): the signal reaches that process only, so
    whatever it does there cannot stop the test session."""
    process = subprocess.Popen([sys.executable, "-m", "lth_suite", *map(str, args)],
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is None and marker.exists():
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
    try:
        output = process.communicate(timeout=300)[0]
    finally:
        if process.poll() is None:
            process.kill()
    return SimpleNamespace(exit_code=process.returncode, output=output)


def tiny_spec(tiny: dict, replicates: int = 1, launcher: object = "ray", **criterion) -> dict:
    spec = {**tiny, "experiment": {**tiny["experiment"], "replicates": replicates},
            "launcher": launcher, "report": {"enabled": False}}
    if criterion:
        spec["pruning"] = {**tiny["pruning"], "criterion": {"name": "fault", **criterion}}
    return spec


def runs_of(uri: str, experiment: str) -> tuple[list, list]:
    """(parent runs, child runs) of one MLflow experiment."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([found.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def expected_units(replicates: int, levels: int) -> set[tuple[str, str, str]]:
    return {(str(r), "0", "ticket") for r in range(replicates)} | {
        (str(r), str(level), branch) for r in range(replicates)
        for level in range(1, levels + 1) for branch in BRANCHES}


def finished_once(children: list, parent_id: str) -> dict[tuple[str, str, str], object]:
    """The FINISHED children of a parent by (replicate, level, branch); none twice."""
    done: dict[tuple[str, str, str], object] = {}
    for child in children:
        if child.data.tags["mlflow.parentRunId"] != parent_id or child.info.status != "FINISHED":
            continue
        p = child.data.params
        key = (p["replicate"], p["level"], p["branch"])
        assert key not in done, f"{key} finished twice"
        done[key] = child
    return done


def parent_of(uri: str, experiment: str) -> str:
    parents, _ = runs_of(uri, experiment)
    assert len(parents) == 1
    return parents[0].info.run_id


# --- the unit graph (pure) ------------------------------------------------------------

def test_unit_graph_chains_tickets_and_hangs_each_control_on_its_ticket():
    graph = UnitGraph.build(replicates=2, levels=2, controls=["reinit", "random_prune"])
    assert len(graph) == 2 * (1 + 2 * 3)
    for replicate in range(2):
        assert graph.dependencies[Unit(replicate, 0, "ticket")] == ()
        for level in (1, 2):
            ticket = Unit(replicate, level, "ticket")
            assert graph.dependencies[ticket] == (Unit(replicate, level - 1, "ticket"),)
            for control in ("reinit", "random_prune"):
                assert graph.dependencies[Unit(replicate, level, control)] == (ticket,)
    position = {unit: index for index, unit in enumerate(graph.units)}
    assert all(position[dep] < position[unit] for unit in graph.units
               for dep in graph.dependencies[unit])  # a valid order to run them in
    # level-major, as the in-process runner trains them
    assert [u.name for u in graph.units[:5]] == [
        "r0-level0-ticket", "r1-level0-ticket", "r0-level1-ticket", "r0-level1-reinit",
        "r0-level1-random_prune"]
    left = graph.without([Unit(0, 0, "ticket"), Unit(0, 1, "ticket")])
    assert Unit(0, 1, "ticket") not in left.units
    assert left.dependencies[Unit(0, 1, "reinit")] == ()  # satisfied: already finished
    assert left.dependencies[Unit(1, 1, "ticket")] == (Unit(1, 0, "ticket"),)


def test_unit_graph_of_a_spec_follows_its_controls(tiny, registry):
    tiny["controls"] = {"reinit": False, "random_prune": True}
    graph = unit_graph(build_spec(tiny, registry))
    assert {u.branch for u in graph.units} == {"ticket", "random_prune"}
    assert len(graph) == 1 + 2 * 2


# --- local: today's behaviour -----------------------------------------------------------

def test_launcher_is_not_part_of_the_hash_and_local_is_the_default(tiny, registry):
    plain = build_spec(tiny, registry)
    assert plain.launcher.name == "local"
    for launcher in ("local", {"name": "ray", "address": "auto", "num_cpus_per_unit": 2}):
        assert spec_hash(build_spec({**tiny, "launcher": launcher}, registry)) == spec_hash(plain)
    ray = build_spec({**tiny, "launcher": "ray"}, registry).launcher
    assert ray.params == {"address": "", "num_cpus_per_unit": 1.0, "num_gpus_per_unit": 0.0,
                          "max_retries": 3, "num_cpus": None, "ranks_per_unit": 1,
                          "rank_placement": "PACK"}


class UnitsInOrder(Launcher):
    """Runs units as a cluster's workers do (each one reads its dependencies back from the
    store), but here, one after another: the out-of-process path without Ray."""

    in_process = False

    def launch(self, jobs):
        return [run_in_order(job) for job in jobs]


def test_the_finishing_step_replays_levels_without_a_trainer(tiny, plugins, tmp_path,
                                                             monkeypatch):
    """Units trained elsewhere: the driver reads every level back and records it; it
    builds no trainer (nothing is left to train) and never opens the parent run twice."""
    from lth_suite.launch import out_of_process
    from lth_suite.lottery import runner as runner_module

    spec = build_spec(tiny_spec(tiny, launcher="local"), plugins.registry)
    uri = f"sqlite:///{tmp_path / 'units.db'}"
    finishing, built = [False], []
    real_finish, real_trainer = out_of_process.finish_from_store, runner_module.Trainer

    def finish(*args, **kwargs):
        finishing[0] = True
        try:
            return real_finish(*args, **kwargs)
        finally:
            finishing[0] = False

    def trainer(*args, **kwargs):
        built.append(finishing[0])
        return real_trainer(*args, **kwargs)

    monkeypatch.setattr(out_of_process, "finish_from_store", finish)
    monkeypatch.setattr(runner_module, "Trainer", trainer)
    result = execute([ExperimentPlan(spec, open_tracker(uri))], plugins, UnitsInOrder(), uri)[0]
    assert result.error is None and len(result.finished.levels) == spec.pruning.levels + 1
    assert built and not any(built)  # the units built theirs; the finishing step none
    assert all(b.restored for level in result.finished.levels for b in level.branches)


def test_units_run_from_the_store_equal_the_in_memory_runner(tiny, plugins, tmp_path):
    spec = build_spec(tiny_spec(tiny, replicates=2, launcher="local"), plugins.registry)
    whole = run_experiment(spec, plugins, f"sqlite:///{tmp_path / 'whole.db'}")
    uri = f"sqlite:///{tmp_path / 'units.db'}"
    seen: list[str] = []

    class Seen:
        def end(self, label, summary):
            seen.append(label)

        def note(self, text):
            raise AssertionError(text)

        def stop(self):
            pass

    plan = ExperimentPlan(spec, open_tracker(uri))
    result = execute([plan], plugins, UnitsInOrder(), uri, lambda total: Seen())[0]
    assert result.error is None and result.units == 14
    assert seen == [unit.name for unit in unit_graph(spec).units]  # in order, in process
    finished = result.finished
    assert finished.summary == whole.summary
    for one, two in zip(whole.levels, finished.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch) and b.restored
            assert a.mask.equals(b.mask) and a.result.history == b.result.history
    client = MlflowClient(uri)
    assert client.get_run(result.parent_id).info.status == "FINISHED"
    _, children = runs_of(uri, "tiny")
    assert len(finished_once(children, result.parent_id)) == 14 == len(children)


def test_a_deep_unit_restores_only_the_dense_and_the_latest_ticket(tiny, plugins, tmp_path):
    tiny["pruning"]["levels"] = 4  # units at levels 3 and 4 skip the levels between
    tiny["controls"] = {"reinit": False, "random_prune": True}
    spec = build_spec(tiny_spec(tiny, launcher="local"), plugins.registry)
    whole = run_experiment(spec, plugins, f"sqlite:///{tmp_path / 'whole.db'}")
    uri = f"sqlite:///{tmp_path / 'units.db'}"
    restored: list[tuple[int, str]] = []
    original = LotteryRunner._replicate

    def spy(self, replicate, level, controls=CONTROLS):
        restored.append((level, ",".join(controls)))
        return original(self, replicate, level, controls)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LotteryRunner, "_replicate", spy)
        result = execute([ExperimentPlan(spec, open_tracker(uri))], plugins, UnitsInOrder(),
                         uri)[0]
    units = [(level, b) for level, b in restored if b in ("", "random_prune")]
    assert units.count((4, "")) == 1  # r0-level4-ticket: restores levels 0 and 3, not 1-2
    ticket_4 = restored.index((4, ""))
    assert restored[ticket_4 - 2:ticket_4] == [(0, ""), (3, "")]
    assert result.error is None and result.finished.summary == whole.summary
    for one, two in zip(whole.levels, result.finished.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert a.mask.equals(b.mask) and a.result.history == b.result.history


def test_local_runs_through_the_local_launcher(tiny, plugins, tracking_uri, monkeypatch):
    from lth_suite.builtin.launchers import LocalLauncher

    launched = []
    real = LocalLauncher.launch

    def spy(self, jobs):
        launched.append([len(job.graph) for job in jobs])
        return real(self, jobs)

    monkeypatch.setattr(LocalLauncher, "launch", spy)
    finished = run_experiment(build_spec(tiny_spec(tiny, launcher="local"), plugins.registry),
                              plugins, tracking_uri)
    assert launched == [[7]]  # one job: level 0, then 2 levels x (ticket + 2 controls)
    assert [len(level.branches) for level in finished.levels] == [1, 3, 3]


def test_shared_store_check():
    for uri in ("http://127.0.0.1:5000", "https://mlflow.example.org",
                "postgresql://u:p@db/mlflow", "postgresql+psycopg2://db/mlflow",
                "mysql+pymysql://db/mlflow"):
        check_tracking_uri(uri, "ray")
    for uri in ("sqlite:///mlflow.db", "mlruns", "/tmp/mlruns", "file:///tmp/mlruns"):
        with pytest.raises(LthError, match=r"tracking.uri / --tracking-uri .*shared"):
            check_tracking_uri(uri, "ray")


def test_a_missing_ray_is_a_one_line_error_before_any_run(tiny, write_spec, tmp_path,
                                                          monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("run", write_spec(tiny_spec(tiny)), "--tracking-uri", uri)
    assert result.exit_code == 2
    assert result.output.strip() == ("error: launcher 'ray' needs the ray package, which is "
                                     "not installed: pip install 'lth-suite[ray]'")
    assert not (tmp_path / "mlflow.db").exists()


SWEEP = """\
base: spec.yaml
experiment: grid
grid:
  experiment.seed: [0, 1]
points:
  - {rewind: lr}
"""


def test_sweep_validates_every_point_before_running_any(tiny, write_spec, tmp_path):
    tiny["pruning"]["levels"] = 1
    write_spec(tiny_spec(tiny, launcher="local"))
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(SWEEP + "  - {rewind.name: nope}\n  - {training.lr: -1}\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("sweep", sweep, "--tracking-uri", uri)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"error: {sweep} point 3 (rewind.name=nope): rewind.name: "
                               "unknown rewind 'nope'")
    assert lines[1].startswith(f"error: {sweep} point 4 (training.lr=-1): training.lr: ")
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran
    shared = tmp_path / "shared.yaml"
    shared.write_text(SWEEP + "  - {launcher: ray}\n")
    result = invoke("sweep", shared, "--tracking-uri", uri)
    assert result.exit_code == 2 and "point 3 (launcher=ray): launcher:" in result.output


def test_local_sweep_tags_every_point_under_one_experiment_and_reports(tiny, write_spec,
                                                                       tmp_path):
    tiny["pruning"]["levels"] = 1
    tiny["controls"] = {"reinit": False, "random_prune": False}
    write_spec({**tiny_spec(tiny, launcher="local"), "report": {"enabled": True}})
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("sweep", sweep, "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    parents, children = runs_of(uri, "grid")
    assert len(parents) == 3 and len(children) == 3 * 2
    ids = {p.data.tags["lth_suite.sweep_id"] for p in parents}
    assert len(ids) == 1
    sweep_id = ids.pop()
    assert sorted(p.data.tags["lth_suite.sweep_point"] for p in parents) == sorted(
        json.dumps(d) for d in ({"experiment.seed": 0}, {"experiment.seed": 1}, {"rewind": "lr"}))
    assert {p.info.status for p in parents} == {"FINISHED"}
    assert f"lth-suite report --sweep {sweep_id}" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ 0 ")]
    assert "ticket acc. (%)" in result.output and len(rows) == 1
    assert re.search(r"│\s+\d{1,3}\.\d\d │$", rows[0]), rows  # percent, as everywhere else
    folder = tmp_path / "reports" / f"sweep-{sweep_id[:8]}"
    assert (folder / "sweep_accuracy_vs_weights.png").stat().st_size > 1000
    table = (folder / "sweep.md").read_text()
    assert "`experiment.seed=1`" in table and "`rewind=lr`" in table and "level 1" in table
    again = invoke("report", "--sweep", sweep_id[:6], "--tracking-uri", uri, "--out",
                   tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "sweep.md").read_text() == table
    unknown = invoke("report", "--sweep", "ffffffff", "--tracking-uri", uri)
    assert unknown.exit_code == 2 and "no sweep 'ffffffff'" in unknown.output


def test_an_interrupted_local_sweep_resumes_skipping_what_it_finished(tiny, write_spec,
                                                                     tmp_path, monkeypatch):
    from lth_suite.lottery.runner import LotteryRunner

    tiny["pruning"]["levels"] = 2
    tiny["controls"] = {"reinit": False, "random_prune": False}
    write_spec(tiny_spec(tiny, launcher="local"))
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real = LotteryRunner.run_level

    def interrupt_point_1(self, level):  # Ctrl-C in the second point, level 2
        if self.experiment.spec.experiment.seed == 1 and level == 2:
            raise KeyboardInterrupt
        return real(self, level)

    monkeypatch.setattr(LotteryRunner, "run_level", interrupt_point_1)
    stopped = invoke("sweep", sweep, "--tracking-uri", uri)
    assert stopped.exit_code == 130, stopped.output
    assert f"resume with: lth-suite sweep {sweep} --tracking-uri {uri} --resume" in \
        stopped.output.replace("\n", "")
    parents, children = runs_of(uri, "grid")
    by_point = {p.data.tags["lth_suite.sweep_index"]: p for p in parents}
    assert {i: p.info.status for i, p in by_point.items()} == {"0": "FINISHED", "1": "KILLED"}
    trained_before = {c.info.run_id for c in children if c.info.status == "FINISHED"}

    monkeypatch.setattr(LotteryRunner, "run_level", real)
    resumed = invoke("sweep", sweep, "--tracking-uri", uri, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "point 0/3: experiment.seed=0 (finished earlier: skipped)" in resumed.output
    assert f"point 1/3: experiment.seed=1 (resuming parent run {by_point['1'].info.run_id})" \
        in resumed.output.replace("\n", "")
    assert "point 2/3: rewind=lr (running)" in resumed.output
    parents, children = runs_of(uri, "grid")
    assert len(parents) == 3 and {p.info.status for p in parents} == {"FINISHED"}
    assert {p.info.run_id for p in parents} >= {p.info.run_id for p in by_point.values()}
    for parent in parents:  # each (replicate, level, branch) finished exactly once
        assert len(finished_once(children, parent.info.run_id)) == 3
    finished = {c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert trained_before <= finished  # nothing that had finished was trained again
    assert len(finished) == 9
    table_rows = [line for line in resumed.output.splitlines() if "experiment.seed=" in line
                  and re.search(r"\d\s*\S\s+\d+\.\d\d\s*\S\s*$", line)]  # weights %, accuracy %
    assert len(table_rows) == 2, resumed.output  # the skipped point shows its stored figures


# --- ray against a real tracking server -------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 (sqlite behind it, artifacts proxied); its URI."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=(folder / "server.log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()}")
        time.sleep(0.3)
    yield uri
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """One local Ray instance with 2 CPUs for the module; workers can import the fault
    plugin, installed as a dist-info folder on their PYTHONPATH (and on ours)."""
    if not HAS_RAY:
        pytest.skip("ray is not installed: pip install 'lth-suite[ray]' runs these tests")
    import ray

    site = tmp_path_factory.mktemp("fault-plugin")
    write_fault_plugin(site)
    previous = os.environ.get("PYTHONPATH")
    python_path = os.pathsep.join(filter(None, [str(site), previous]))
    os.environ["PYTHONPATH"] = python_path
    sys.path.insert(0, str(site))
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = previous
    # What a CLI process of its own needs to join this Ray instance and load the plugin.
    yield {"RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": python_path}
    ray.shutdown()
    sys.path.remove(str(site))


@pytest.fixture
def faults(monkeypatch, ray_cluster):
    """Load the fault plugin (and no other installed one), here and in the workers."""
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "lth-test-faults")
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


@needs_ray
def test_sqlite_is_refused_for_ray_before_any_run(tiny, write_spec, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("run", write_spec(tiny_spec(tiny)), "--tracking-uri", uri)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: tracking.uri / --tracking-uri {uri}: launcher 'ray' trains in other processes")
    assert not (tmp_path / "mlflow.db").exists()
    default = invoke("run", write_spec(tiny_spec(tiny)))  # the default store is sqlite too
    assert default.exit_code == 2 and "tracking.uri / --tracking-uri sqlite:" in default.output


@needs_ray
def test_two_replicates_with_both_controls_through_ray(tiny, write_spec, server, ray_cluster,
                                                       monkeypatch, plugins, tmp_path):
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    tiny["experiment"]["name"] = "two-replicates"
    data = tiny_spec(tiny, replicates=2, launcher={"name": "ray", "num_cpus": 2})
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 0, result.output
    parent = parent_of(server, "two-replicates")
    _, children = runs_of(server, "two-replicates")
    done = finished_once(children, parent)
    assert set(done) == expected_units(2, 2) and len(children) == 14  # each arrived once
    client = MlflowClient(server)
    assert client.get_run(parent).info.status == "FINISHED"
    assert "spec.yaml" in {a.path for a in client.list_artifacts(parent)}
    for child in children:
        names = sorted(a.path for a in client.list_artifacts(child.info.run_id))
        assert names == ["mask.npz", "state_dict.pt"], (child.info.run_name, names)
    for key in ("density", "ticket/early_stop_test_accuracy", "ticket/final_test_accuracy"):
        assert sorted(m.step for m in client.get_metric_history(parent, key)) == [0, 1, 2], key
    mlflow.set_tracking_uri(server)
    models = mlflow.search_logged_models(
        experiment_ids=[client.get_experiment_by_name("two-replicates").experiment_id],
        output_format="list")
    final = {(c.data.params["replicate"], c.info.run_id) for k, c in done.items()
             if k[1:] == ("2", "ticket")}
    assert sorted((m.name, m.source_run_id) for m in models) == sorted(
        (f"ticket-r{r}-level2", run_id) for r, run_id in final)  # log_models: final
    # the same masks as the in-memory runner trains
    quiet = {"log_models": "none", "log_state_dicts": False}  # results do not depend on it
    local = run_experiment(build_spec({**data, "launcher": "local", "tracking": quiet},
                                      plugins.registry), plugins,
                           f"sqlite:///{tmp_path / 'local.db'}")
    for event in local.levels:
        for branch in event.branches:
            child = done[(str(branch.replicate), str(event.level), branch.branch)]
            logged = Path(client.download_artifacts(child.info.run_id, "mask.npz", str(tmp_path)))
            assert Mask.unpack(logged.read_bytes()).equals(branch.mask)


@needs_ray
def test_a_worker_killed_mid_unit_is_retried_and_the_experiment_completes(
        tiny, write_spec, server, faults, tmp_path):
    tiny["experiment"]["name"] = "killed-worker"
    marker = tmp_path / "killed.marker"
    data = tiny_spec(tiny, marker=str(marker), level=1, mode="kill")
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 0, result.output
    assert marker.exists()  # the fault fired: a worker died inside r0-level1-ticket
    parent = parent_of(server, "killed-worker")
    _, children = runs_of(server, "killed-worker")
    assert set(finished_once(children, parent)) == expected_units(1, 2)
    others = [(c.info.run_name, c.info.status) for c in children if c.info.status != "FINISHED"]
    assert others == [("r0-level1-ticket", "KILLED")]  # the killed attempt, closed at the end
    client = MlflowClient(server)
    assert client.get_run(parent).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(parent, "density")) == [0, 1, 2]


@needs_ray
def test_a_unit_that_fails_for_good_fails_the_parent_naming_it(tiny, write_spec, server,
                                                               faults, tmp_path):
    tiny["experiment"]["name"] = "failing-unit"
    data = tiny_spec(tiny, marker=str(tmp_path / "raised.marker"), level=2, mode="raise")
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 1, result.output
    reason = ("r0-level2-ticket failed: criterion 'fault' from plugin lth-test-faults raised "
              "RuntimeError: injected fault")
    assert f"error: {reason}" in result.output
    client = MlflowClient(server)
    parent = client.get_run(parent_of(server, "failing-unit"))
    assert parent.info.status == "FAILED" and parent.data.tags["lth_suite.error"] == reason
    _, children = runs_of(server, "failing-unit")
    statuses = {c.info.run_name: c.info.status for c in children}
    assert statuses["r0-level2-ticket"] == "FAILED" and "RUNNING" not in statuses.values()
    assert statuses["r0-level1-ticket"] == "FINISHED"  # the units it stopped: none or KILLED
    assert [s for s in statuses.values() if s not in ("FINISHED", "KILLED")] == ["FAILED"]


@needs_ray
def test_ctrl_c_cancels_the_units_then_resume_finishes_with_ray(tiny, write_spec, server,
                                                                faults, ray_cluster, tmp_path):
    tiny["experiment"]["name"] = "interrupted"
    marker = tmp_path / "sleeping.marker"
    data = tiny_spec(tiny, marker=str(marker), level=1, mode="sleep")

    result = run_interrupted(marker, 0.5, "run", write_spec(data), "--tracking-uri", server,
                             env=ray_cluster)
    assert result.exit_code == 130, result.output
    parent = parent_of(server, "interrupted")
    assert f"resume with: lth-suite resume {parent}" in result.output
    client = MlflowClient(server)
    _, children = runs_of(server, "interrupted")
    statuses = {c.info.run_name: c.info.status for c in children}
    assert client.get_run(parent).info.status == "KILLED"
    assert statuses == {"r0-level0-ticket": "FINISHED", "r0-level1-ticket": "KILLED"}

    resumed = invoke("resume", parent, "--tracking-uri", server)
    assert resumed.exit_code == 0, resumed.output
    _, children = runs_of(server, "interrupted")
    assert set(finished_once(children, parent)) == expected_units(1, 2)
    assert len(children) == 8  # 7 finished, each once, and the interrupted attempt
    assert client.get_run(parent).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(parent, "density")) == [0, 1, 2]


@needs_ray
def test_a_sweep_through_ray_submits_every_point_together(tiny, write_spec, server, ray_cluster,
                                                          monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    tiny["pruning"]["levels"] = 1
    write_spec(tiny_spec(tiny, launcher="ray"))
    sweep = tmp_path / "ray-sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "spec.yaml", "grid": {
        "experiment.seed": [0, 1], "rewind": ["init", "lr"]}}))
    result = invoke("sweep", sweep, "--tracking-uri", server)
    assert result.exit_code == 0, result.output
    parents, children = runs_of(server, "ray-sweep")
    assert len(parents) == 4 and {p.info.status for p in parents} == {"FINISHED"}
    assert len({p.data.tags["lth_suite.sweep_id"] for p in parents}) == 1
    assert sorted(p.data.tags["lth_suite.sweep_point"] for p in parents) == sorted(
        json.dumps({"experiment.seed": s, "rewind": r}) for s in (0, 1) for r in ("init", "lr"))
    assert len({p.data.tags["lth_suite.spec_hash"] for p in parents}) == 4
    for parent in parents:
        assert set(finished_once(children, parent.info.run_id)) == expected_units(1, 1)
    assert len(children) == 4 * 4


@needs_ray
def test_a_ray_sweep_resumes_only_its_unfinished_point(tiny, write_spec, server, ray_cluster,
                                                      monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    tiny["pruning"]["levels"] = 1
    write_spec(tiny_spec(tiny, launcher="ray"))
    sweep = tmp_path / "ray-resume.yaml"
    sweep.write_text(yaml.safe_dump({"base": "spec.yaml", "grid": {"experiment.seed": [0, 1]}}))
    assert invoke("sweep", sweep, "--tracking-uri", server).exit_code == 0
    parents, children = runs_of(server, "ray-resume")
    by_point = {p.data.tags["lth_suite.sweep_index"]: p.info.run_id for p in parents}
    # What a crash during point 1 leaves: its parent and one of its trainings not finished.
    client = MlflowClient(server)
    client.set_terminated(by_point["1"], status="KILLED")
    lost = next(c for c in children if c.data.tags["mlflow.parentRunId"] == by_point["1"]
                and c.info.run_name == "r0-level1-random_prune")
    client.set_terminated(lost.info.run_id, status="KILLED")
    result = invoke("sweep", sweep, "--tracking-uri", server, "--resume")
    assert result.exit_code == 0, result.output
    assert "point 0/2: experiment.seed=0 (finished earlier: skipped)" in result.output
    assert f"(resuming parent run {by_point['1']})" in result.output.replace("\n", "")
    parents, after = runs_of(server, "ray-resume")
    assert {p.info.run_id for p in parents} == set(by_point.values())
    assert {p.info.status for p in parents} == {"FINISHED"}
    for parent in by_point.values():
        assert set(finished_once(after, parent)) == expected_units(1, 1)
    assert len(after) == len(children) + 1  # only the lost training ran again
