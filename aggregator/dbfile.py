"""The database before SQLAlchemy is loaded: which URL to use, and for a SQLite file its path, its schema version,
its one-writer lock and a plain sqlite3 connection to it.

:mod:`aggregator.store` opens every database through SQLAlchemy, whose import alone costs more than a poll that
finds nothing new; :mod:`aggregator.quickpoll` reads and writes the feeds' state through this module instead.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import StoreError

if TYPE_CHECKING:
    from .config import Config

SCHEMA_VERSION = 5
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"


def resolve_database(database: str | None, config: Config | None) -> str:
    """--database, else $AGGREGATOR_DATABASE_URL, else the config's ``database`` setting."""
    if database:
        return database
    if os.environ.get(DATABASE_ENV):
        return os.environ[DATABASE_ENV]
    if config is not None:
        return config.settings.database
    from .config import DEFAULT_DATABASE_URL

    return DEFAULT_DATABASE_URL


def sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///FILE``) or bare file path; None for anything else (another
    database, an in-memory one, a URL with options or escapes), which only SQLAlchemy reads correctly."""
    if "://" in url:
        if not url.startswith("sqlite:///"):
            return None
        url = url.removeprefix("sqlite:///")
    if not url or url == ":memory:" or any(c in url for c in "?%#"):
        return None
    return Path(url).expanduser()


def lock_path(database: str | Path) -> Path:
    """The file that :func:`lock` locks for ``database``: beside it, named after it."""
    return Path(database).expanduser().resolve().with_name(Path(database).name + ".lock")


def lock(database: str | Path, purpose: str) -> IO[str]:
    """Take the one-writer lock of a SQLite database (until the returned file is closed), or raise StoreError
    naming the process that holds it."""
    path = lock_path(database)
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"another aggregator process (pid {holder}) is already running on {database}; "
            f"one writer at a time, so this {purpose} does not start"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()} ({purpose})")
    handle.flush()
    return handle


def unlock(handle: IO[str]) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def connect_current(path: Path) -> sqlite3.Connection | None:
    """A sqlite3 connection to the aggregator database at ``path`` when it exists and has this version's schema;
    None otherwise (a new file, an older or newer schema, a damaged file), for :func:`aggregator.store.open_database`
    to create, upgrade or report."""
    if not path.is_file():
        return None
    connection = None
    try:
        connection = sqlite3.connect(path, timeout=30)
        # As aggregator.store sets them on every connection (WAL itself is a setting of the file).
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        row = None
    if row is None or row[0] != str(SCHEMA_VERSION):
        if connection is not None:
            connection.close()
        return None
    return connection
