"""Store stage: the database engine, schema upgrades and the one-daemon-per-database lock."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

from . import models
from .models import Meta

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"


class StoreError(Exception):
    """The database cannot be opened, upgraded or locked."""


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets scripts read while the daemon writes; the busy timeout makes a second writer wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def normalize_database_url(url: str) -> str:
    """Accept a bare file path as a SQLite database; use psycopg 3 for plain postgresql URLs."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _set_sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _migrate_to_1(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def _migrate_to_2(engine: Engine) -> None:
    # Articles stored before keep NULL terms: a restart computes theirs from the text.
    binary = "BYTEA" if engine.url.get_backend_name() == "postgresql" else "BLOB"
    present = {column["name"] for column in inspect(engine).get_columns("article")}
    with engine.begin() as connection:
        if "terms" not in present:
            connection.execute(text("ALTER TABLE article ADD COLUMN terms TEXT"))
        if "term_weights" not in present:
            connection.execute(text(f"ALTER TABLE article ADD COLUMN term_weights {binary}"))


def _migrate_to_3(engine: Engine) -> None:
    from .search import create_search_index

    create_search_index(engine)  # the full-text index, filled from the articles stored so far


# Each step upgrades the schema from version N-1 to N; a new column or table is a new step (create_all in step 1
# makes today's tables, so a later step checks before it adds).
MIGRATIONS: dict[int, Callable[[Engine], None]] = {1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3}


def schema_version(engine: Engine) -> int:
    with Session(engine) as session:
        try:
            row = session.get(Meta, "schema_version")
        except Exception:  # no meta table yet
            return 0
        return int(row.value) if row else 0


def upgrade(engine: Engine) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
    assert models  # the tables must be registered on SQLModel.metadata before create_all
    found = schema_version(engine)
    if found > SCHEMA_VERSION:
        raise StoreError(f"database schema version {found} is newer than this aggregator ({SCHEMA_VERSION})")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        log.info("upgrading database schema to version %d", version)
        MIGRATIONS[version](engine)
        with Session(engine) as session:
            session.merge(Meta(key="schema_version", value=str(version)))
            session.commit()
    return found


def open_database(url: str | None = None) -> Engine:
    """An engine on ``url`` (or ``$AGGREGATOR_DATABASE_URL``) with the schema upgraded."""
    url = url or os.environ.get(DATABASE_ENV) or "sqlite:///aggregator.db"
    try:
        engine = make_engine(url)
        upgrade(engine)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot open database {url}: {exc}") from exc
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A short write transaction: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class DaemonLock:
    """Held by the one daemon allowed per database (a file lock for SQLite, an advisory lock for PostgreSQL)."""

    ADVISORY_KEY = 0x61676772  # "aggr"

    def __init__(self, engine: Engine, purpose: str = "daemon"):
        self.engine = engine
        self.purpose = purpose
        self._file = None
        self._conn = None

    def acquire(self) -> None:
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database or ":memory:"
            if database == ":memory:":
                return
            path = Path(database).expanduser().resolve().with_name(Path(database).name + ".lock")
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise StoreError(
                    f"another aggregator process (pid {holder}) is already running on {database}; "
                    f"one writer at a time, so this {self.purpose} does not start"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} ({self.purpose})")
            handle.flush()
            self._file = handle
        else:
            self._conn = self.engine.connect()
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.ADVISORY_KEY}).scalar()
            if not got:
                self._conn.close()
                self._conn = None
                raise StoreError(
                    f"another aggregator process is already running on {url.render_as_string()}; "
                    f"one writer at a time, so this {self.purpose} does not start"
                )

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

