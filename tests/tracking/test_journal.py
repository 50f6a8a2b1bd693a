"""SQLite stores keep their rollback journal between writes, and only lth-suite's stores."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from lth_suite.tracking.writer import Tracker


def _journal_mode(engine: sqlalchemy.engine.Engine) -> str:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA journal_mode").scalar()


def test_the_store_keeps_its_journal_and_other_databases_do_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    tracker = Tracker(f"sqlite:///{store}")
    tracker.start_experiment("journal", "parent", {"a": 1}, {}, "a: 1\n")
    run = tracker.start_child("r0-level0-ticket", {"replicate": 0})
    tracker.log_params(run, {"density": 1.0})
    # in the store while the child still runs: a crash would leave it saying what it was
    assert tracker.reader.require(run).params == {"replicate": "0", "density": "1.0"}
    tracker.end_run(run)
    tracker.end_run(tracker.parent_id)
    assert (tmp_path / "mlflow.db-journal").exists()  # kept, its header zeroed
    assert _journal_mode(sqlalchemy.create_engine(f"sqlite:///{store}")) == "persist"
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    assert _journal_mode(other) == "delete"


def test_a_process_that_wrote_to_the_store_leaves_no_journal_behind(tmp_path):
    import subprocess
    import sys

    code = ("from lth_suite.tracking.writer import Tracker\n"
            "t = Tracker('sqlite:///mlflow.db')\n"
            "t.start_experiment('journal', 'parent', {'a': 1}, {}, 'a: 1\\n')\n"
            "t.end_run(t.parent_id)\n"
            "import os; assert os.path.exists('mlflow.db-journal')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # the store's creation lock (mlflow.db.lock) may stay: empty, and ignored by git
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mlflow.db"))
    assert left in (["mlflow.db"], ["mlflow.db", "mlflow.db.lock"]), left
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().splitlines()
    assert "mlflow.db-journal" in ignored and "*.db.lock" in ignored
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with engine.connect() as connection:  # the store is whole and reads as before
        assert connection.exec_driver_sql("SELECT name FROM runs").scalars().all() == ["parent"]


def test_git_dirtiness_counts_tracked_files_only(tmp_path, monkeypatch):
    import subprocess

    from lth_suite.tracking.git_state import git_state
    from lth_suite.tracking.names import GIT_DIRTY_TAG

    def git(*args):
        subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("add", "train.py")
    git("commit", "-qm", "code")
    monkeypatch.chdir(tmp_path)
    for side_file in ("mlflow.db", "mlflow.db-journal", "notes.txt"):  # a run's leftovers
        (tmp_path / side_file).write_text("")
    assert git_state()[GIT_DIRTY_TAG] == "false"
    (tmp_path / "train.py").write_text("x = 2\n")
    assert git_state()[GIT_DIRTY_TAG] == "true"
