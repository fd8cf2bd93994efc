import pytest
from sqlalchemy import text
from sqlmodel import Session

from aggregator.models import Meta
from aggregator.store import SCHEMA_VERSION, DaemonLock, StoreError, open_database, schema_version, upgrade


def test_new_database_is_at_current_schema_in_wal_mode(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    assert schema_version(engine) == SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    assert upgrade(engine) == SCHEMA_VERSION  # a second start changes nothing


def test_newer_schema_is_refused(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    with Session(engine) as session:
        session.merge(Meta(key="schema_version", value=str(SCHEMA_VERSION + 1)))
        session.commit()
    with pytest.raises(StoreError, match="newer"):
        open_database(f"sqlite:///{tmp_path}/a.db")


def test_bare_path_is_a_sqlite_database(tmp_path):
    engine = open_database(str(tmp_path / "sub" / "b.db"))
    assert engine.url.get_backend_name() == "sqlite"
    assert (tmp_path / "sub" / "b.db").exists()


def test_second_daemon_lock_is_refused(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    with DaemonLock(engine):
        with pytest.raises(StoreError, match="already running"):
            DaemonLock(open_database(f"sqlite:///{tmp_path}/a.db")).acquire()
    with DaemonLock(engine):  # released on exit, so it can be taken again
        pass
