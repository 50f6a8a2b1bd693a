"""A script that starts workers without ``if __name__ == "__main__":`` fails in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from lth_suite.testing import TINY

SCRIPT = """\
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins import load_plugins
from lth_suite.spec.loading import build_spec

spec = {spec!r}
plugins = load_plugins(installed=False)
{call}
"""


def run_script(tmp_path, guarded: bool = False) -> subprocess.CompletedProcess:
    spec = {**TINY, "launcher": {"name": "local", "workers": 2}, "report": {"enabled": False},
            "pruning": {**TINY["pruning"], "levels": 1},
            "controls": {"reinit": False, "random_prune": False}}
    call = "run_experiment(build_spec(spec, plugins.registry), plugins, 'sqlite:///mlflow.db')"
    if guarded:
        call = 'if __name__ == "__main__":\n' + textwrap.indent(call, "    ")
    script = tmp_path / "experiment.py"
    script.write_text(SCRIPT.format(spec=spec, call=call))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_without_the_guard_the_error_names_the_cause_and_the_fix(tmp_path):
    done = run_script(tmp_path, guarded=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lth_suite.errors.LthError: the workers could not start") and \
        'if __name__ == "__main__":' in last, done.stderr
    assert "bootstrapping phase" not in done.stderr  # multiprocessing's own traceback
    assert done.stderr.count("Traceback") == 1
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run existed
