"""SQLite stores keep their rollback journal between writes instead of deleting it.

Every MLflow write to an SQLite store is a transaction, and a training makes several. In
SQLite's default journal mode each transaction creates ``mlflow.db-journal`` and deletes
it again; deleting a file changes its folder, which the file system must make durable as
well, and on a busy machine that costs tens of milliseconds per write. ``PERSIST`` mode
zeroes the journal's header instead of deleting it: the same rollback journal, as safe
as the default after a crash, and unlike WAL it needs no shared memory, so a store on a
network file system is as safe as before. The mode belongs to a connection, not to the
file: other programs that open the store (``mlflow ui``) write as they always did.

When the process ends, the journal goes: switching a connection back to ``DELETE`` mode
makes SQLite delete the kept journal under its own locks (never one another process is
writing through), so no ``mlflow.db-journal`` is left beside the store.
"""

from __future__ import annotations

import atexit
import sqlite3
from contextlib import closing
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
        atexit.register(release_journals)
    _stores.add(_file(uri.removeprefix("sqlite:///")))


def release_journals() -> None:
    """Delete the journals this process kept (SQLite does, under its locks); a store that
    is busy or gone keeps its journal, which is harmless."""
    for store in sorted(_stores):
        if not Path(store).exists():
            continue
        try:
            with closing(sqlite3.connect(store, timeout=5)) as connection:
                # SQLite deletes the journal when a connection leaves PERSIST for DELETE;
                # a new connection starts in DELETE, so it enters PERSIST first.
                connection.execute("PRAGMA journal_mode=PERSIST").fetchall()
                connection.execute("PRAGMA journal_mode=DELETE").fetchall()
        except sqlite3.Error:
            pass  # locked by another writer past the timeout: its journal stays until later


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
