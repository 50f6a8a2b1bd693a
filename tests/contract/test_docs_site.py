"""The documentation site: it builds with ``mkdocs build --strict``, and its runnable examples run.

An example is runnable when the line right before its fence is ``<!-- runnable -->`` and the
fence is ``bash`` or ``python``. The examples run in the order of the pages' paths and of
their place in a page, in one temporary folder that holds a link to ``specs/`` (so each one
finds the store the ones before it wrote, as a reader's shell would), with the built-in
plugins only. Mark only examples that run offline and in a few seconds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
RUNNABLE = re.compile(r"^<!-- runnable -->\n```(bash|python)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def runnable_examples() -> list[tuple[str, str, str]]:
    """(id, language, code) of every runnable example, in order."""
    examples = []
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).as_posix()
        for number, match in enumerate(RUNNABLE.finditer(page.read_text()), 1):
            examples.append((f"{name}#{number}", match.group(1), match.group(2)))
    return examples


EXAMPLES = runnable_examples()


def _missing_docs_packages() -> list[str]:
    missing = []
    for package in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:  # its parent package is absent
            found = False
        if not found:
            missing.append(package)
    return missing


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory) -> Path:
    """One folder for all the examples, as a reader's working directory."""
    folder = tmp_path_factory.mktemp("docs-examples")
    (folder / "specs").symlink_to(ROOT / "specs", target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def examples_env() -> dict[str, str]:
    """The environment of the examples: this Python's scripts first, built-in plugins only."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["LTH_SUITE_LOAD_PLUGINS"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_every_runnable_marker_is_followed_by_a_bash_or_python_fence():
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        markers = re.findall(rf"^{re.escape(MARKER)}$", text, re.M)
        assert len(markers) == len(RUNNABLE.findall(text)), (
            f"{page.relative_to(ROOT)}: a '{MARKER}' line must come right before a ```bash or "
            "```python fence")


def test_the_essential_examples_are_marked_runnable():
    code = "\n".join(example for _, _, example in EXAMPLES)
    for needle in ("lth-suite run specs/quickstart.yaml", "lth-suite validate", "lth-suite plugins",
                   "run_experiment("):
        assert needle in code, f"no runnable example runs {needle!r}"
    assert any(language == "python" for _, language, _ in EXAMPLES)


@pytest.mark.parametrize(("language", "code"), [(lang, code) for _, lang, code in EXAMPLES],
                         ids=[name for name, _, _ in EXAMPLES])
def test_runnable_example(language, code, examples_dir, examples_env):
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=examples_dir, env=examples_env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(f"{time.perf_counter() - started:.1f} s")


def test_mkdocs_build_strict(tmp_path):
    missing = _missing_docs_packages()
    if missing:
        pytest.skip(f"the docs extra is not installed (pip install -e '.[docs]'): no {', '.join(missing)}")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "spec" / "index.html").exists()
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "lth-suite run" in cli and "--tracking-uri" in cli
