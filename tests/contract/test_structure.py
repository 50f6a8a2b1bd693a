"""The structure holds: the import-linter contracts (layers, only tracking imports mlflow,
built-ins import the API only, no cycles) and ruff's checks, both configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The tool installed beside this interpreter (``pip install -e '.[test]'`` brings it)."""
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[test]'"
    return path


def test_import_contracts_are_kept():
    done = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout
    assert "Built-in plugins import lth_suite.api only, as third-party plugins do KEPT" in done.stdout


def test_ruff_finds_nothing():
    done = subprocess.run([tool("ruff"), "check", "--no-cache", "lth_suite", "tests",
                           "benchmarks", "plugins"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_modules_stay_under_about_300_lines():
    """Modules stay small enough to read: about 300 lines at most."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "lth_suite").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 320}
    assert not long, long
