"""SQLite stores keep their rollback journal between writes instead of deleting it.

Every MLflow write to an SQLite store is a transaction, and a training makes several. In
SQLite's default journal mode each transaction creates ``mlflow.db-journal`` and deletes
it again; deleting a file changes its folder, which the file system must make durable as
well, and on a busy machine that costs tens of milliseconds per write. ``PERSIST`` mode
zeroes the journal's header instead of deleting it: the same rollback journal, as safe
as the default after a crash, and unlike WAL it needs no shared memory, so a store on a
network file system is as safe as before. The mode belongs to a connection, not to the
file: other programs that open the store (``mlflow ui``) write as they always did.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

JOURNAL_LIMIT = 1 << 20  # bytes a kept journal may stay at after a large write
_stores: set[str] = set()  # the database files whose connections keep their journal


def keep_journal(uri: str) -> None:
    """Connections this process opens from now on to the SQLite store ``uri`` keep its
    journal between writes; other stores and databases are left alone."""
    if not uri.startswith("sqlite:///") or uri.endswith((":memory:", ":///")):
        return
    if not _stores:  # SQLAlchemy's documented way to set a pragma on every new connection
        event.listen(Engine, "connect", _persist)
    _stores.add(_file(uri.removeprefix("sqlite:///")))


def _file(path: str) -> str:
    return str(Path(path.split("?")[0]).resolve())


def _persist(connection: Any, record: Any) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    main = next((row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"),
                "")
    if main and _file(main) in _stores:
        connection.execute("PRAGMA journal_mode=PERSIST").fetchall()
        connection.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}").fetchall()
