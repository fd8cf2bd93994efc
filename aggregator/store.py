"""Store stage: the database engine, schema upgrades and the one-daemon-per-database lock."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session, SQLModel, create_engine

from . import models
from .dbfile import DATABASE_ENV, SCHEMA_VERSION, lock, unlock
from .errors import StoreError
from .models import Meta
from .workers.names import SCHEMA_LOCK_KEY, SEQUENCER_KEY

log = logging.getLogger(__name__)

URL_FORMS = "sqlite:///FILE, a file path, or postgresql://USER@HOST/DATABASE"


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets scripts read while the daemon writes; the busy timeout makes a second writer wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def normalize_database_url(url: str) -> str:
    """Accept a bare file path as a SQLite database (``~`` is the home folder); use psycopg 3 for plain
    postgresql URLs."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith("sqlite:///~"):
        return f"sqlite:///{Path(url.removeprefix('sqlite:///')).expanduser()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def database_url_problem(url: str) -> str | None:
    """What is wrong with the shape of ``url``, or None when it names a SQLite file or a PostgreSQL database."""
    if not url or not url.strip():
        return f"the database URL is empty (expected {URL_FORMS})"
    try:
        parsed = make_url(normalize_database_url(url))
    except ArgumentError:
        return f"not a database URL: {url!r} (expected {URL_FORMS})"
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.host:  # sqlite://file.db: the file name became a host name
            return f"{url!r}: a SQLite URL has three slashes before a relative path (sqlite:///FILE)"
    elif backend != "postgresql":
        return f"unsupported database {parsed.drivername!r} in {shown_url(url)} (expected {URL_FORMS})"
    return None


def shown_url(url: str | URL) -> str:
    """The URL to show a person: a password is masked."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url if "://" in url else normalize_database_url(url))
    except ArgumentError:
        return str(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for other databases and for an in-memory one)."""
    parsed = url if isinstance(url, URL) else make_url(normalize_database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def describe_database_error(url: str | URL | None, exc: BaseException, doing: str = "open") -> str:
    """One line for a database that cannot be opened (``doing="open"``) or read, saying what to do about it."""
    cause = getattr(exc, "orig", None) or exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    if reason.startswith("Could not decode to UTF-8"):  # the message goes on with the damaged bytes
        reason = reason.split(" with text ", 1)[0]
    reason = reason if len(reason) <= 200 else reason[:200] + "..."
    if url is None:
        return f"database error: {reason}"
    path = sqlite_path(url)
    if path is not None:
        if "malformed" in reason or "Could not decode to UTF-8" in reason:
            return (f"database {path} is damaged ({reason}): stop every aggregator process on it, then restore "
                    f"it from a backup or recover what is left with: sqlite3 {path} .recover | sqlite3 NEW.db")
        if "file is not a database" in reason:
            return f"{path} is not a SQLite database ({reason}): check --database or the config's 'database'"
        if "unable to open database file" in reason:
            return f"cannot open database {path}: {reason} (does its folder exist, and may you write to it?)"
    elif isinstance(cause, ImportError):
        return f"cannot open database {shown_url(url)}: {reason} (pip install 'aggregator[postgres]')"
    return f"cannot {doing} database {shown_url(url)}: {reason}"


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


def _migrate_to_4(engine: Engine) -> None:
    # The content hash's index was never read (the engine holds the open window's hashes) and was the second
    # largest of a headline database's: one less index to update on every insert.
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX IF EXISTS ix_article_content_hash"))


def _migrate_to_5(engine: Engine) -> None:
    # Articles stored before keep NULL evidence: their stories are rebuilt without the names they used.
    if "evidence" not in {column["name"] for column in inspect(engine).get_columns("article")}:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE article ADD COLUMN evidence TEXT"))


# Each step upgrades the schema from version N-1 to N; a new column or table is a new step (create_all in step 1
# makes today's tables, so a later step checks before it adds).
MIGRATIONS: dict[int, Callable[[Engine], None]] = {
    1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3, 4: _migrate_to_4, 5: _migrate_to_5,
}


def schema_version(engine: Engine) -> int:
    # Only a missing table means version 0: a damaged file must raise, not look like a new database.
    if not inspect(engine).has_table(Meta.__tablename__):
        return 0
    with Session(engine) as session:
        row = session.get(Meta, "schema_version")
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


def _require_sqlite_file(url: str, create: bool) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file: check --database or the config's 'database'")
    if not create and not path.exists():
        raise StoreError(f"database {path} does not exist: check --database or the config's 'database' "
                         "(`aggregator poll` or `aggregator run` creates it)")


def open_database(url: str | None = None, create: bool = True) -> Engine:
    """An engine on ``url`` (or ``$AGGREGATOR_DATABASE_URL``) with the schema upgraded.

    With ``create=False`` (for commands that only read) the database must already exist and be an aggregator
    database: a mistyped file name is an error instead of a new, empty database.
    """
    url = url or os.environ.get(DATABASE_ENV) or "sqlite:///aggregator.db"
    problem = database_url_problem(url)
    if problem:
        raise StoreError(problem)
    _require_sqlite_file(url, create)
    engine = None
    try:
        engine = make_engine(url)
        if not create and schema_version(engine) == 0:
            raise StoreError(f"{shown_url(url)} is not an aggregator database (it has none of its tables): check "
                             "--database or the config's 'database'")
        with _upgrade_lock(engine):
            upgrade(engine)
    except BaseException as exc:
        if engine is not None:
            engine.dispose()
        if isinstance(exc, Exception) and not isinstance(exc, StoreError):
            raise StoreError(describe_database_error(url, exc)) from exc
        raise
    return engine


UPGRADE_LOCK_KEY = SCHEMA_LOCK_KEY  # the queue's schema set-up takes the same lock


@contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, processes of several machines may start together on a new database: they take turns to
    upgrade its schema (an advisory lock), so the tables are made once. SQLite needs none (one process)."""
    if engine.url.get_backend_name() != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_LOCK_KEY})
            connection.commit()


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

    # On PostgreSQL, the story sequencer's lock (aggregator.workers.names.SEQUENCER_KEY): a one-shot poll
    # or a daemon writes stories itself, so it must not run beside a cluster's sequencer, nor beside another.
    ADVISORY_KEY = SEQUENCER_KEY

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
            self._file = lock(database, self.purpose)
        else:
            self._conn = self.engine.connect()
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.ADVISORY_KEY}).scalar()
            if got:  # named like the cluster's processes, so a status shows who holds the writer's lock
                self._conn.execute(text("SELECT set_config('application_name', :n, false)"),
                                   {"n": f"aggregator {self.purpose} {socket.gethostname()}:{os.getpid()}"[:63]})
                self._conn.commit()
            else:
                self._conn.close()
                self._conn = None
                raise StoreError(
                    f"another aggregator process is already running on {url.render_as_string()}; "
                    f"one writer at a time, so this {self.purpose} does not start (when it is `aggregator run`, "
                    "its workers poll the feeds: the queue's scheduler polls each at its interval)"
                )

    def release(self) -> None:
        if self._file is not None:
            unlock(self._file)
            self._file = None
        if self._conn is not None:
            # The connection goes back to the engine's pool: the session's lock and name must not go with it.
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.ADVISORY_KEY})
                self._conn.execute(text("RESET application_name"))
                self._conn.commit()
            except Exception:  # noqa: BLE001 - a lost connection holds no lock any more
                self._conn.invalidate()
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

