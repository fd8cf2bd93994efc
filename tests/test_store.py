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


def _damaged_copy(tmp_path, name="damaged.db"):
    """A real aggregator database with garbage written over its pages after the first."""
    path = tmp_path / name
    engine = open_database(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (x TEXT)"))
        for _ in range(50):
            connection.execute(text("INSERT INTO filler VALUES (:x)"), {"x": "y" * 2000})
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not (tmp_path / f"{name}-wal").exists()
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xde\xad\xbe\xef" * 8192)
    return path


def test_read_only_open_refuses_a_missing_file_instead_of_creating_it(tmp_path):
    with pytest.raises(StoreError, match=r"typo\.db does not exist"):
        open_database(f"sqlite:///{tmp_path}/typo.db", create=False)
    assert not (tmp_path / "typo.db").exists()
    with pytest.raises(StoreError, match="is a folder"):
        open_database(str(tmp_path), create=False)


def test_read_only_open_refuses_a_database_that_is_not_ours(tmp_path):
    (tmp_path / "empty.db").touch()
    with pytest.raises(StoreError, match="not an aggregator database"):
        open_database(str(tmp_path / "empty.db"), create=False)
    open_database(f"sqlite:///{tmp_path}/mine.db")
    assert schema_version(open_database(f"sqlite:///{tmp_path}/mine.db", create=False)) == SCHEMA_VERSION


def test_a_file_that_is_not_a_database_gives_one_line(tmp_path):
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  timezone: UTC\n" * 100)
    with pytest.raises(StoreError) as info:
        open_database(str(path))
    assert str(info.value).startswith(f"{path} is not a SQLite database") and "\n" not in str(info.value)


def test_a_damaged_database_gives_one_line_that_says_what_to_do(tmp_path):
    path = _damaged_copy(tmp_path)
    with pytest.raises(StoreError) as info:
        open_database(str(path))
    message = str(info.value)
    assert message.startswith(f"database {path} is damaged (database disk image is malformed)")
    assert "backup" in message and f"sqlite3 {path} .recover" in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user@host/db", "unsupported database 'mysql'"),
        ("sqlite://relative.db", "three slashes"),
        ("postgresql://me:secret@127.0.0.1:1/news", "cannot open database postgresql://me:***@127.0.0.1:1/news"),
    ],
)
def test_bad_urls_give_one_line_without_the_password(url, message):
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as info:
        open_database(url)
    assert message in str(info.value)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_a_home_relative_path_is_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for url in ("~/a.db", "sqlite:///~/b.db"):
        open_database(url).dispose()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists() and not (tmp_path / "~").exists()


def test_a_lock_file_that_cannot_be_made_is_one_line(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    (tmp_path / "a.db.lock").mkdir()  # in the way, as a read-only folder would be
    with pytest.raises(StoreError, match=r"cannot create the lock file .*a\.db\.lock: Is a directory"):
        DaemonLock(engine).acquire()


def test_upgrade_to_4_drops_the_unread_content_hash_index(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/a.db")
    with engine.begin() as connection:  # a version 3 database, which had the index
        connection.execute(text("CREATE INDEX ix_article_content_hash ON article (content_hash)"))
        connection.execute(text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))
    assert upgrade(engine) == 3
    with engine.connect() as connection:
        indexes = {row[1] for row in connection.execute(text("PRAGMA index_list(article)"))}
    assert "ix_article_content_hash" not in indexes and "ix_article_story_id" in indexes
    assert schema_version(engine) == SCHEMA_VERSION
