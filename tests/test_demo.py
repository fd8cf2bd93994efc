"""`aggregator demo`: its news is recent whenever it runs, and a kept database can be read and replayed into."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from aggregator.cli import main
from aggregator.demo import load_corpus, stamped


def test_stamped_corpus_ends_just_before_now_and_keeps_its_gaps():
    corpus = load_corpus()
    now = datetime(2031, 5, 6, 9, 30, 42, tzinfo=UTC)
    moved = stamped(corpus, now)
    newest = max(a.published for a in moved.articles)
    assert newest == datetime(2031, 5, 6, 9, 25, tzinfo=UTC)
    shifts = {b.published - a.published for a, b in zip(corpus.articles, moved.articles, strict=True)}
    assert len(shifts) == 1  # every article moved by the same amount
    def order(c):
        return [(a.outlet, a.slug, a.round) for a in c.articles]

    assert order(moved) == order(corpus)


def _articles(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("select count(*) from article").fetchone()[0]


def test_demo_keeps_its_database_for_stories_and_digest_and_never_stores_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no feeds.yaml here
    database = f"sqlite:///{tmp_path}/demo.db"
    started = datetime.now(UTC)
    assert main(["--database", database, "demo"]) == 0
    out = capsys.readouterr().out
    assert "round 3: polled 6 feeds" in out and f"aggregator --database {database} stories" in out
    stored = _articles(tmp_path / "demo.db")
    assert stored == len(load_corpus().articles)

    assert main(["--database", database, "stories", "--format", "json"]) == 0
    stories = json.loads(capsys.readouterr().out)
    assert len(stories) >= 10
    newest = max(stories, key=lambda s: s["last_updated"])
    updated = datetime.fromisoformat(newest["last_updated"].replace("Z", "+00:00"))
    assert started - timedelta(minutes=6) <= updated <= datetime.now(UTC)  # today's news, not 2026-11-24's

    assert main(["--database", database, "digest"]) == 0  # today, in the default zone (UTC)
    if updated.date() == datetime.now(UTC).date():
        assert newest["headline"] in " ".join(capsys.readouterr().out.split())

    assert main(["--database", database, "demo"]) == 0
    assert "already holds the demo" in capsys.readouterr().out
    assert _articles(tmp_path / "demo.db") == stored


def test_demo_without_a_database_says_it_was_temporary(tmp_path, monkeypatch, capsys):
    from aggregator.demo import DemoCorpus, run_demo

    corpus = load_corpus()
    small = DemoCorpus(outlets=corpus.outlets[:2], articles=[a for a in corpus.articles if a.round == 1
                                                              and a.outlet in {o.slug for o in corpus.outlets[:2]}],
                       rounds=1)
    out = run_demo(corpus=small)
    assert "was temporary" in out and "--database sqlite:///demo.db" in out
