"""SQLite stores keep their rollback journal between writes, and only lth-suite's stores."""

from __future__ import annotations

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
