"""Pytest fixtures for testing lth-suite and its plugins hermetically.

Import them into a ``conftest.py``::

    from lth_suite.testing import hermetic, tiny_spec_data, tracking_uri  # noqa: F401

``heavy_imports`` checks that a plugin loads without torch (see docs/plugins.md). This
module imports without pytest (a test dependency only): ``TINY`` and ``heavy_imports``
work anywhere, and the fixtures exist where pytest is installed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError:  # a plain install has no pytest; only the fixtures need it
    pytest = None  # type: ignore[assignment]

# A spec that trains in about a second: LeNet-style MLP on digits, 2 levels, both controls.
TINY: dict[str, Any] = {
    "experiment": {"name": "tiny", "seed": 0, "replicates": 1},
    "model": {"name": "mlp", "hidden": [32, 16]},
    "dataset": {"name": "digits", "validation": 0.1},
    "training": {"optimizer": "adam", "lr": 3e-3, "batch_size": 60, "duration": "40it",
                 "eval_every": 20},
    "pruning": {"criterion": "magnitude", "levels": 2},
    "rewind": "init",
    "controls": {"reinit": True, "random_prune": True},
    "tracking": {"log_models": "final"},
}

HEAVY = ("torch", "mlflow", "torchvision", "sklearn")


def heavy_imports(code: str, cwd: Path | None = None) -> list[str]:
    """The heavy packages (torch, mlflow, ...) a fresh interpreter holds after ``code``.

    A plugin that registers its torch code with ``lth_suite.api.lazy`` should give
    ``[]`` for ``import my_plugin`` plus loading it: ``lth-suite validate`` then stays fast.
    """
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json as _json, sys as _sys
        print(_json.dumps(sorted({{m.split(".")[0] for m in _sys.modules}} & {set(HEAVY)!r})))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=cwd)
    return json.loads(done.stdout.strip().splitlines()[-1])


MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                    "MLFLOW_EXPERIMENT_NAME")


FIXTURES = ("hermetic", "tracking_uri", "tiny_spec_data")

if pytest is not None:

    @pytest.fixture(autouse=True)
    def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
        """No installed third-party plugins, no inherited MLflow settings, cwd in tmp."""
        monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
        for name in MLFLOW_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)
        return tmp_path

    @pytest.fixture
    def tracking_uri(tmp_path: Path) -> str:
        """A temporary embedded MLflow store."""
        return f"sqlite:///{tmp_path / 'mlflow.db'}"

    @pytest.fixture
    def tiny_spec_data() -> dict[str, Any]:
        """A fresh copy of ``TINY``, to change and pass to ``build_spec``."""
        return copy.deepcopy(TINY)


class FailingControl:
    """A control for resume tests: the ticket's own start (its mask and rewind point),
    raising ``RuntimeError("interrupted")`` while ``broken`` is set (at ``level`` only,
    when one is given). ``plugin()`` is a plugin module registering it as ``flaky``:
    an experiment with ``controls: {flaky: true}`` fails there; set ``broken = False``
    and resume it."""

    def __init__(self, level: int | None = None):
        self.broken, self.level = True, level

    def __call__(self, context: Any) -> Any:
        """The ticket's start, or the failure."""
        from .lottery.controls import ControlStart

        if self.broken and self.level in (None, context.level):
            raise RuntimeError("interrupted")
        return ControlStart(context.mask, context.point)

    def plugin(self, name: str = "lth_suite_testing_failing_control") -> types.ModuleType:
        """A plugin module (for ``load_plugins(extra=[...])``) registering this control."""
        from .plugins.hookspecs import hookimpl

        def lth_register_controls(register: Any) -> None:
            register("flaky", lambda params: self,
                     description="the ticket again, failing until told not to")

        module = types.ModuleType(name)
        module.lth_register_controls = hookimpl(lth_register_controls)  # type: ignore[attr-defined]
        return module


def fail_then_resume(data: dict[str, Any], extra: list[Any], uri: str,
                     controls: dict[str, Any] | None = None) -> Any:
    """Run the spec ``data`` (with ``controls`` and a ``FailingControl`` as ``flaky``), with
    the plugin modules ``extra`` loaded in process, expect it to fail in that control,
    then mend the control and resume the experiment; the resumed ``ExperimentFinished``."""
    from .errors import PluginFailure
    from .launch.execute import run_experiment
    from .lottery.checkpoints import find_resumable
    from .plugins.manager import load_plugins
    from .spec.loading import build_spec
    from .tracking import open_tracker

    control = FailingControl()
    module = control.plugin()
    sys.modules[module.__name__] = module
    try:
        plugins = load_plugins(extra=[*extra, module], installed=False)
        spec = build_spec({**data, "controls": {**(controls or {}), "flaky": True}},
                          plugins.registry)
        try:
            run_experiment(spec, plugins, uri)
        except PluginFailure as failure:
            assert "control 'flaky'" in str(failure), failure
        else:
            raise AssertionError("the failing control did not stop the experiment")
        control.broken = False
        parent = find_resumable(open_tracker(uri).reader, spec, plugins.registry)
        assert parent is not None, "the failed experiment left nothing to resume"
        return run_experiment(spec, plugins, uri, resume=parent)
    finally:
        sys.modules.pop(module.__name__, None)


def __getattr__(name: str) -> Any:
    """A fixture asked for without pytest installed: say so instead of a bare AttributeError."""
    if name in FIXTURES:
        raise AttributeError(f"lth_suite.testing.{name} is a pytest fixture: install pytest "
                             "(pip install 'lth-suite[test]') to use it")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
