"""A real shared tracking server: `mlflow server` on PostgreSQL, several experiments at once.

The session fixture starts a private PostgreSQL cluster (installing Debian's `postgresql`
package when we are root and it is missing), the module fixture an `mlflow server` on it
that proxies artifacts into a temporary folder. Four `lth-suite run` processes then log
to the server together, and every run, metric and artifact must arrive.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from lth_suite.pruning.masks import Mask
from tests.conftest import TINY

EXPERIMENTS = 4
LEVELS = 2
CHILDREN = {"r0-level0-ticket"} | {f"r0-level{level}-{branch}" for level in range(1, LEVELS + 1)
                                   for branch in ("ticket", "reinit", "random_prune")}
EVALUATIONS = [0, 20, 40]  # TINY: 40 iterations, evaluated every 20
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server's bin folder holding initdb and pg_ctl, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
             if Path(p).with_name("initdb").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
               default=None)


def install_postgres() -> str | None:
    """Install Debian's ``postgresql`` package; None on success, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return ("PostgreSQL (initdb, pg_ctl) is not installed, and installing it needs root "
                "and apt-get")
    env = {**os.environ, **APT_ENV}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                                text=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or update.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`apt-get install -y postgresql` failed: {' | '.join(tail)}"
    return None


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a database ``mlflow``; its URI."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        problem = install_postgres()
        bin_dir = postgres_bin()
        if bin_dir is None:
            pytest.skip(problem or "apt-get installed postgresql but no initdb/pg_ctl was found "
                        "under /usr/lib/postgresql/*/bin")
    # PostgreSQL refuses to run as root: as root, run the server as the package's user.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="lth-pg-"))  # not under pytest's 0700 root tmp
    if os.geteuid() == 0:
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root, and there is no `postgres` user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root, and no `runuser` to run PostgreSQL as `postgres`")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def pg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*as_user, *args], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=120)
        if check and done.returncode != 0:
            log = folder / "server.log"
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}"
                               f"{done.stderr}{log.read_text() if log.exists() else ''}")
        return done

    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
       "-E", "UTF8", "--no-locale", "--no-sync")
    # fsync off: a test database never needs to survive a power cut.
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
       "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {folder} -F", "start")
    try:
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
           "mlflow")
        # The driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until ``GET url/health`` answers 200; fails with the server's log if it dies or hangs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n"
                        f"{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer /health in {timeout:.0f} s:\n"
                f"{log.read_text()[-5000:]}")


@pytest.fixture(scope="module")
def mlflow_server(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``mlflow server`` on PostgreSQL, serving artifacts from a temporary folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    artifacts, log, port = folder / "artifacts", folder / "server.log", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No GenAI job runner: it starts seven more Python processes that the test never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres_uri,
             "--artifacts-destination", str(artifacts), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(url, server, log)
        yield {"url": url, "artifacts": artifacts, "log": log}
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def lth_run(spec: Path, uri: str, cwd: Path, log: Path) -> subprocess.Popen:
    """``python -m lth_suite run SPEC --tracking-uri URI`` in the background, output to ``log``."""
    # One thread each: four processes share the cores, and torch's spinning threads would
    # otherwise slow the tiny trainings down several times on a busy machine.
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "lth_suite", "run", str(spec),
                                 "--tracking-uri", uri], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_four_experiments_at_once_lose_nothing_on_a_postgres_server(mlflow_server, tmp_path):
    url = mlflow_server["url"]
    names = [f"team-{chr(ord('a') + i)}" for i in range(EXPERIMENTS)]
    processes = {}
    started = time.monotonic()
    for seed, name in enumerate(names):
        spec = {**TINY, "experiment": {"name": name, "seed": seed, "replicates": 1},
                "report": {"enabled": False}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        processes[name] = (lth_run(path, url, tmp_path, tmp_path / f"{name}.log"),
                           tmp_path / f"{name}.log")
    try:
        for name, (process, log) in processes.items():
            try:
                code = process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not finish in 300 s:\n{log.read_text()[-3000:]}")
            assert code == 0, f"{name} exited {code}:\n{log.read_text()[-3000:]}"
            # the server's own UI, the parent run's page; not a local command
            assert re.search(f"open it in the MLflow UI: {re.escape(url)}/#/experiments/\\d+/"
                             "runs/[0-9a-f]{32}\\?workflowType=machine_learning\n",
                             log.read_text()), log.read_text()
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    print(f"\nruns finished after {time.monotonic() - started:.1f} s")
    client = MlflowClient(url)
    mlflow.set_tracking_uri(url)
    counts = {"runs": 0, "metric histories": 0, "artifacts": 0, "models": 0}
    parent_keys = {f"{b}/{k}": ([0, 1, 2] if b == "ticket" else [1, 2])
                   for b in ("ticket", "reinit", "random_prune")
                   for k in ("early_stop_test_accuracy", "final_test_accuracy",
                             "early_stop_iteration")}
    parent_keys["density"] = [0, 1, 2]
    # train_loss is averaged over the iterations before each evaluation: none at step 0.
    child_keys = {"train_loss": EVALUATIONS[1:], **dict.fromkeys(
        ("val_loss", "val_accuracy", "test_loss", "test_accuracy"), EVALUATIONS)}
    for seed, name in enumerate(names):
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None, f"experiment {name} is missing"
        # Artifacts go through the server, never to a path only this machine can see.
        location = experiment.artifact_location
        assert location.startswith("mlflow-artifacts:"), location
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert (len(parents), len(children)) == (1, len(CHILDREN)), name
        assert {r.info.status for r in runs} == {"FINISHED"}, {
            r.info.run_name: r.info.status for r in runs}
        counts["runs"] += len(runs)
        parent = parents[0].info.run_id
        assert parents[0].info.run_name.startswith(f"{name}-")

        assert "spec.yaml" in {a.path for a in client.list_artifacts(parent)}
        logged = yaml.safe_load(Path(client.download_artifacts(parent, "spec.yaml")).read_text())
        assert logged["experiment"]["name"] == name and logged["experiment"]["seed"] == seed
        counts["artifacts"] += 1
        for key, expected in parent_keys.items():
            assert steps(client, parent, key) == expected, (name, key)
            counts["metric histories"] += 1

        assert {c.info.run_name for c in children} == CHILDREN, name
        for child in children:
            run_id = child.info.run_id
            assert child.data.tags["mlflow.parentRunId"] == parent
            assert {"early_stop_iteration", "early_stop_test_accuracy",
                    "final_test_accuracy"} <= set(child.data.metrics), child.info.run_name
            for key, expected in child_keys.items():
                assert steps(client, run_id, key) == expected, (name, child.info.run_name, key)
                counts["metric histories"] += 1
            assert {a.path for a in client.list_artifacts(run_id)} >= {"mask.npz", "state_dict.pt"}
            folder = tmp_path / "downloads" / run_id
            folder.mkdir(parents=True)
            mask_file = client.download_artifacts(run_id, "mask.npz", str(folder))
            mask = Mask.unpack(Path(mask_file).read_bytes())
            assert abs(mask.density() - float(child.data.params["density"])) < 1e-5
            state = torch.load(client.download_artifacts(run_id, "state_dict.pt", str(folder)),
                               map_location="cpu", weights_only=True)
            assert set(mask.kept()) <= set(state), child.info.run_name
            counts["artifacts"] += 2

        models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                             output_format="list")
        final = f"ticket-r0-level{LEVELS}"
        assert [m.name for m in models] == [final], name  # log_models: final
        by_name = {c.info.run_name: c.info.run_id for c in children}
        assert models[0].source_run_id == by_name[f"r0-level{LEVELS}-ticket"]
        assert str(models[0].status) == "READY", models[0].status
        model = mlflow.pytorch.load_model(models[0].model_uri)
        assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
        counts["models"] += 1

    # The files sit in the server's artifact folder; the clients wrote no local store.
    stored = [p.name for p in mlflow_server["artifacts"].rglob("*") if p.is_file()]
    assert stored.count("mask.npz") == stored.count("state_dict.pt") == EXPERIMENTS * len(CHILDREN)
    assert stored.count("spec.yaml") == EXPERIMENTS and stored.count("MLmodel") == EXPERIMENTS
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    histories = len(parent_keys) + len(CHILDREN) * len(child_keys)
    assert counts == {"runs": EXPERIMENTS * (1 + len(CHILDREN)),
                      "metric histories": EXPERIMENTS * histories,
                      "artifacts": EXPERIMENTS * (1 + 2 * len(CHILDREN)), "models": EXPERIMENTS}
    print(f"checked {counts} after {time.monotonic() - started:.1f} s")


def test_an_unreachable_tracking_uri_exits_2_naming_it_and_creates_no_run(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(TINY))
        env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": ""}
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "lth_suite", "run", str(spec),
                                   "--tracking-uri", uri], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`lth-suite run --tracking-uri {uri}` still waiting after 180 s: "
                        "it retries the unreachable server instead of failing fast")
        seconds = time.monotonic() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, f"exit {done.returncode}: {lines[-10:]}"
    assert len(lines) == 1 and lines[0].startswith("error: ") and uri in lines[0], lines[-10:]
    assert seconds < 60, (f"failing took {seconds:.0f} s: it retried the unreachable server "
                          "instead of failing fast")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
