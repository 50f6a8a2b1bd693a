"""Tracking URI resolution, parameter flattening and store errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import TrackingError
from lth_suite.tracking import default_tracking_uri, flatten, open_tracker, resolve_tracking_uri, ui_command


def test_default_store_is_mlflow_db_in_the_working_directory(tmp_path):
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_uri_precedence_cli_then_spec_then_environment(monkeypatch):
    assert resolve_tracking_uri(None, None) == default_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None, None) == "http://env:5000"
    assert resolve_tracking_uri(None, "sqlite:///spec.db") == "sqlite:///spec.db"
    assert resolve_tracking_uri("sqlite:///cli.db", "sqlite:///spec.db") == "sqlite:///cli.db"
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc")  # under `mlflow run`, its store wins
    assert resolve_tracking_uri("sqlite:///cli.db", "sqlite:///spec.db") == "http://env:5000"


def test_flatten_gives_dotted_string_params():
    flat = flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": "x", "f": None})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "a.d": "{}", "e": "x", "f": "null"}


def unusable_uri(tmp_path: Path) -> str:
    """A sqlite path beneath a regular file: no folder can be made there."""
    (tmp_path / "a-file").write_text("")
    return f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"


def test_unusable_store_is_a_tracking_error_naming_the_uri(tmp_path):
    uri = unusable_uri(tmp_path)
    with pytest.raises(TrackingError, match="a-file/mlflow.db"):
        open_tracker(uri)


def test_run_with_an_unusable_store_exits_2_without_traceback(tiny, write_spec, tmp_path):
    uri = unusable_uri(tmp_path)
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri", uri])
    assert result.exit_code == 2
    assert "tracking URI" in result.output and "Traceback" not in result.output


def test_run_uses_the_default_store_in_the_working_directory(tiny, write_spec, tmp_path):
    tiny["pruning"]["levels"] = 1
    tiny["controls"] = {"reinit": False, "random_prune": False}
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny))])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "mlruns" / "tiny").is_dir()
    assert "lth-suite ui" in result.output


def test_ui_serves_the_store_on_loopback():
    command = ui_command("sqlite:///x.db", 5123)
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:///x.db"


def test_unreachable_server_fails_fast_with_exit_2_and_no_run(tiny, write_spec, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri",
                                      f"http://127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"tracking URI http://127.0.0.1:{port}: the server cannot be reached" in result.output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("text, expected", [("../../etc", "etc"), ("a b/c", "a-b-c"),
                                            ("", "unnamed"), ("ok_name-1.json", "ok_name-1.json")])
def test_artifact_names_from_user_input_are_sanitised(text, expected):
    from lth_suite.tracking import safe_name

    assert safe_name(text) == expected


def test_ui_command_really_serves_the_store(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": ""}
    server = subprocess.Popen([sys.executable, "-m", "lth_suite", "ui", "--port", str(port),
                               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.time() < deadline, "the UI never answered"
                assert server.poll() is None, "the UI exited"
                time.sleep(0.5)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) == 1  # the MLflow server, in a process group of its own
        server.send_signal(signal.SIGTERM)  # to lth-suite alone, as a job scheduler would
        assert server.wait(timeout=60) == 0
        deadline = time.time() + 30
        while True:  # the server and every worker it started are gone
            try:
                os.killpg(int(children[0]), 0)
            except ProcessLookupError:
                break
            assert time.time() < deadline, "the MLflow server outlived lth-suite ui"
            time.sleep(0.5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_ui_refuses_a_port_that_is_not_one(port):
    result = CliRunner().invoke(app, ["ui", "--port", port])
    assert result.exit_code == 2 and "--port" in result.output


def test_ui_of_a_tracking_server_points_at_the_server():
    result = CliRunner().invoke(app, ["ui", "--tracking-uri", "http://lab-server:5000"])
    assert result.exit_code == 0
    assert "open http://lab-server:5000" in result.output


@pytest.mark.parametrize("model_format", ["pickle", "pt2"])
def test_logged_models_load_back_in_either_format(tracking_uri, model_format):
    import mlflow
    import torch

    tracker = open_tracker(tracking_uri)
    tracker.start_experiment("formats", "parent", {}, {}, "")
    child = tracker.start_child("child", {})
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    uri = tracker.log_model(child, model, "ticket", torch.randn(2, 1, 4, 4), model_format)
    tracker.end_all("FINISHED")
    loaded = mlflow.pytorch.load_model(uri)
    x = torch.randn(5, 1, 4, 4)
    assert torch.equal(loaded(x), model(x))
    saved = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri), "data")
    expected = {"pickle": "model.pth", "pt2": "model.pt2"}[model_format]
    assert expected in {p.name for p in saved.iterdir()}


def test_pickled_models_log_without_mlflows_pickle_warning(tracking_uri, caplog):
    import torch

    tracker = open_tracker(tracking_uri)
    tracker.start_experiment("quiet", "parent", {}, {}, "")
    child = tracker.start_child("child", {})
    with caplog.at_level("WARNING", logger="mlflow"):
        tracker.log_model(child, torch.nn.Linear(4, 2), "ticket", torch.randn(2, 4), "pickle")
    tracker.end_all("FINISHED")
    assert not [r for r in caplog.records if "Pickle" in r.getMessage()]
    assert logging_filters_left() == []


def logging_filters_left() -> list:
    import logging

    return logging.getLogger("mlflow.pytorch").filters


def test_the_mlflow_run_run_is_the_parent_in_whichever_experiment_it_is(
        tracking_uri, monkeypatch):
    """``mlflow run .`` without ``--experiment-name`` starts its run in MLflow's Default
    experiment, with it in the one named: either way that run is the parent (one parent,
    MLflow's record of the launch filled in), its experiment of the model-training kind."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for experiment in ("0", client.create_experiment("mine")):
        launched = client.create_run(experiment).info.run_id
        monkeypatch.setenv("MLFLOW_RUN_ID", launched)
        tracker = open_tracker(tracking_uri)
        parent = tracker.start_experiment("lenet300-mnist", "lenet300-mnist-abcd1234", {"a": 1},
                                          {"lth_suite.spec_hash": "abcd1234"}, "spec: {}\n")
        tracker.end_all("FINISHED")
        assert parent == launched
        run = client.get_run(parent)
        assert run.info.experiment_id == experiment and run.data.params["spec.a"] == "1"
        assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == \
            "custom_model_development"
    assert client.get_experiment_by_name("lenet300-mnist") is None  # no second parent


def test_a_run_mlflow_run_started_says_why_it_stopped_before_the_experiment(tracking_uri):
    from mlflow.tracking import MlflowClient

    from lth_suite.tracking.experiments import explain_launched_run

    client = MlflowClient(tracking_uri)
    launched = client.create_run("0").info.run_id
    explain_launched_run(tracking_uri, launched, "CIFAR-10 not found under data")
    note = client.get_run(launched).data.tags["mlflow.note.content"]
    assert note.endswith("stopped before the experiment started: CIFAR-10 not found under data")


def test_the_ui_address_opens_the_model_training_mode():
    from lth_suite.tracking import ui_url

    assert ui_url("127.0.0.1", 5000) == ("http://127.0.0.1:5000/#/experiments"
                                         "?workflowType=machine_learning")
    assert ui_url("h", 80, "3").endswith("/#/experiments/3?workflowType=machine_learning")
