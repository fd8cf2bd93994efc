"""`aggregator poll` through the quick pass: feeds with nothing new are recorded without the ORM, the others are
handed to the full pipeline with what was fetched, so every feed is asked once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from aggregator.cli import main
from aggregator.models import Article, Feed, FetchLog
from aggregator.store import open_database

ROOT = Path(__file__).resolve().parents[1]
NO_VALIDATORS: dict[str, str | None] = {"ETag": None, "Last-Modified": None}


def rss(title: str, ids: list[int]) -> str:
    items = "".join(f"<item><title>{title} story {i}</title><link>https://{title}.example/{i}</link>"
                    f"<guid>{title}-{i}</guid><description>Text {i} of {title}.</description></item>" for i in ids)
    return f'<rss version="2.0"><channel><title>{title} news</title>{items}</channel></rss>'


def write_config(path: Path, site, names: list[str]) -> Path:
    path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n" + "".join(
        f"  - name: {name}\n    url: {site.url(f'/{name}.xml')}\n    full_text: false\n" for name in names))
    return path


def poll_in_a_fresh_interpreter(argv: list[str]) -> tuple[str, list[str]]:
    """The standard output of `aggregator poll` and which of SQLAlchemy and SQLModel it imported."""
    probe = (f"import json, sys\nfrom aggregator.cli import main\ncode = main({argv!r})\n"
             "print(json.dumps([code, [m for m in ('sqlalchemy', 'sqlmodel') if m in sys.modules]]))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 0, done
    return done.stdout, modules


def test_feeds_with_nothing_new_are_recorded_without_the_orm(tmp_path, site):
    site.put("/tagged.xml", rss("tagged", [1, 2]), "application/rss+xml")
    site.put("/plain.xml", rss("plain", [1, 2, 3]), "application/rss+xml", NO_VALIDATORS)
    config = write_config(tmp_path / "feeds.yaml", site, ["tagged", "plain"])
    argv = ["--config", str(config), "--database", f"sqlite:///{tmp_path}/q.db", "poll"]
    assert main(argv) == 0
    engine = open_database(f"sqlite:///{tmp_path}/q.db")
    with Session(engine) as session:
        first = {feed.name: feed.last_fetched_at for feed in session.exec(select(Feed)).all()}

    out, modules = poll_in_a_fresh_interpreter(argv)

    assert "polled 2 of 2 feeds: 0 new articles" in out
    assert modules == []
    assert site.hits["/tagged.xml"] == site.hits["/plain.xml"] == 2
    with Session(engine) as session:  # written as the ORM writes it, and read back by it
        feeds = {feed.name: feed for feed in session.exec(select(Feed)).all()}
        logs = session.exec(select(FetchLog).order_by(FetchLog.id)).all()
    assert feeds["tagged"].last_status == 304 and feeds["plain"].last_status == 200
    for name, feed in feeds.items():
        assert feed.last_fetched_at > first[name] and feed.last_success_at == feed.last_fetched_at
        assert feed.title == f"{name} news" and feed.consecutive_errors == 0 and feed.last_new_entries == 0
    assert feeds["tagged"].etag and feeds["plain"].etag is None
    assert sorted((log.status, log.new_entries) for log in logs[2:]) == [(200, 0), (304, 0)]
    assert all(log.duration_ms >= 0 for log in logs)
    engine.dispose()


def test_feeds_with_more_to_do_are_handed_on_and_asked_once(tmp_path, site, capsys):
    site.put("/same.xml", rss("same", [1]), "application/rss+xml")
    site.put("/grows.xml", rss("grows", [1]), "application/rss+xml", NO_VALIDATORS)
    site.put("/breaks.xml", rss("breaks", [1]), "application/rss+xml")
    config = write_config(tmp_path / "feeds.yaml", site, ["same", "grows", "breaks"])
    argv = ["--config", str(config), "--database", f"sqlite:///{tmp_path}/h.db", "poll"]
    assert main(argv) == 0
    site.put("/grows.xml", rss("grows", [1, 2]), "application/rss+xml", NO_VALIDATORS)  # one new entry
    site.remove("/breaks.xml")  # answers 404 now
    capsys.readouterr()

    assert main(argv) == 1

    captured = capsys.readouterr()
    assert "polled 2 of 3 feeds: 1 new articles; 1 failed, 0 skipped" in captured.out
    assert "aggregator: breaks: failed:" in captured.err
    assert (site.hits["/same.xml"], site.hits["/grows.xml"], site.hits["/breaks.xml"]) == (2, 2, 2)
    engine = open_database(f"sqlite:///{tmp_path}/h.db")
    with Session(engine) as session:
        stored = sorted(article.external_id.rsplit("/", 1)[-1] for article in session.exec(select(Article)).all())
        broken = session.exec(select(Feed).where(Feed.name == "breaks")).one()
    assert stored == ["breaks-1", "grows-1", "grows-2", "same-1"]
    assert broken.consecutive_errors == 1 and broken.last_status == 404 and broken.retry_after is not None
    engine.dispose()

    assert main(argv) == 1  # the broken feed now rests: skipped by the quick pass, which fetches it not
    assert "1 failed" not in capsys.readouterr().out and site.hits["/breaks.xml"] == 2


def test_only_a_plain_sqlite_file_of_this_schema_takes_the_quick_pass(tmp_path):
    import sqlite3

    from aggregator.dbfile import SCHEMA_VERSION, connect_current, sqlite_file

    assert sqlite_file("sqlite:////data/a.db") == Path("/data/a.db")
    assert sqlite_file("news.db") == Path("news.db")
    assert sqlite_file("~/news.db") == Path.home() / "news.db"
    for other in ("postgresql://u@h/db", "sqlite:///:memory:", "sqlite:///a.db?mode=ro", "sqlite+pysqlite:///a.db"):
        assert sqlite_file(other) is None, other
    assert connect_current(tmp_path / "missing.db") is None
    (tmp_path / "notes.txt").write_text("not a database")
    assert connect_current(tmp_path / "notes.txt") is None
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as connection:
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION - 1),))
    connection.close()
    assert connect_current(older) is None  # the full pipeline upgrades it first
    open_database(f"sqlite:///{tmp_path}/current.db").dispose()
    current = connect_current(tmp_path / "current.db")
    assert current is not None
    current.close()
