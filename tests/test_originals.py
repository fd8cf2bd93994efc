"""What every reader is shown: the earliest copy is the original, and URLs carry no tracking parameters."""

import json
from datetime import datetime, timedelta

import pytest

from aggregator.api import Aggregator
from aggregator.cli import main
from aggregator.digest import render_digest
from aggregator.ingest import Incoming, Ingestor
from aggregator.parse import canonical_url
from aggregator.query import originals
from aggregator.store import open_database, session_scope

BODY = ("The regional council approved on Tuesday a plan to rebuild the harbour sea wall over the winter, after the "
        "October storm destroyed more than forty metres of it and flooded the fish market. Engineers said the new "
        "wall would be half a metre higher. The work will cost 2.4 million euros, paid from the emergency fund. ")
START = datetime(2026, 11, 24, 8)
TRACKED = "https://wire.example/harbour-wall?utm_source=rss&utm_medium=feed&fbclid=IwAR0abc&id=7"
CLEAN = "https://wire.example/harbour-wall?id=7"


def _item(key: str, source: str, title: str, text: str, minutes: int, url: str | None = None) -> Incoming:
    return Incoming(source_key=source, external_id=key, source=source, title=title, text=text,
                    published=START + timedelta(minutes=minutes), url=url, canonical_url=canonical_url(url),
                    fetched_at=START + timedelta(hours=2))


@pytest.fixture
def reprint_first(tmp_path):
    """A reprint polled before the wire original it copies (published an hour earlier), then a later copy."""
    database = f"sqlite:///{tmp_path}/o.db"
    engine = open_database(database)
    ingestor = Ingestor(engine)
    ids = {}
    for key, source, title, text, minutes, url in [
        ("r", "Paper", "UPDATE 1-Harbour wall rebuilt", "CITY (Wire) - " + BODY * 2 + " Reporting by the desk.", 60,
         "https://paper.example/wall"),
        ("o", "Wire", "Harbour wall to be rebuilt", BODY * 2, 0, TRACKED),
        ("c", "Gazette", "Harbour wall: council votes", BODY * 2 + " Gazette staff contributed.", 90,
         "https://gazette.example/wall"),
    ]:
        with session_scope(engine) as session:
            ids[key] = ingestor.ingest(session, _item(key, source, title, text, minutes, url)).article_id
    engine.dispose()
    return database, ids


def test_stored_links_point_at_the_reprint(reprint_first):
    """The write side records what it saw: the wire original arrived second and matched the reprint."""
    database, ids = reprint_first
    with Aggregator(database=database) as agg:
        detail = agg.story(agg.stories()[0].id)
    matched = {a.id: a.matched_with for a in detail.articles}
    assert matched[ids["o"]] == ids["r"] and matched[ids["r"]] is None


def test_originals_by_earliest_time_then_id():
    class A:
        def __init__(self, id, dup, minutes, published=True):
            self.id, self.duplicate_of = id, dup
            self.published_at = START + timedelta(minutes=minutes) if published else None
            self.fetched_at = START + timedelta(minutes=minutes)

    # 2 copied 1, 3 copied 2 (a chain), 4 copied 1; 3 is the earliest; 5 stands alone; 6 and 7 tie on time
    found = originals([A(1, None, 30), A(2, 1, 20), A(3, 2, 10), A(4, 1, 40), A(5, None, 0), A(6, None, 5),
                       A(7, 6, 5, published=False)])
    assert found == {1: 3, 2: 3, 3: 3, 4: 3, 5: 5, 6: 6, 7: 6}
    assert originals([A(1, 2, 0), A(2, 1, 5)]) == {1: 1, 2: 1}  # a cycle cannot hang it


def test_story_calls_the_earliest_copy_the_original(reprint_first, capsys):
    database, ids = reprint_first
    with Aggregator(database=database) as agg:
        story = agg.stories()[0]
        detail = agg.story(story.id)
    assert [s.article_id for s in story.sources] == [ids["o"]]
    assert {c.article_id for c in story.sources[0].copies} == {ids["r"], ids["c"]}
    views = {a.id: a for a in detail.articles}
    assert views[ids["o"]].duplicate_of is None
    assert views[ids["r"]].duplicate_of == ids["o"]
    assert views[ids["c"]].duplicate_of == ids["o"]
    # the evidence stays what was stored: the original arrived second and matched the reprint
    assert views[ids["o"]].matched_with == ids["r"] and views[ids["o"]].duplicate_signal == "near-duplicate"

    assert main(["--database", database, "story", str(story.id)]) == 0
    out = capsys.readouterr().out
    line = {i: next(x for x in out.splitlines() if x.strip().startswith(f"#{i} ")) for i in ids.values()}
    assert f"copy of #{ids['o']}" in line[ids["r"]]
    assert f"copy of #{ids['o']}" in line[ids["c"]]
    assert "copy of" not in line[ids["o"]] and f"#{ids['r']}" in line[ids["o"]]

    assert main(["--database", database, "story", str(story.id), "--format", "json"]) == 0
    shown = {a["id"]: a for a in json.loads(capsys.readouterr().out)["articles"]}
    assert shown[ids["r"]]["duplicate_of"] == ids["o"] and shown[ids["o"]]["duplicate_of"] is None


def test_export_and_digest_name_the_earliest_copy(reprint_first, capsys):
    database, ids = reprint_first
    assert main(["--database", database, "export"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows[ids["o"]]["duplicate_of"] is None
    assert rows[ids["r"]]["duplicate_of"] == ids["o"] and rows[ids["c"]]["duplicate_of"] == ids["o"]

    with Aggregator(database=database) as agg:
        digest = agg.digest(START.date())
        same = agg.explain(ids["r"], ids["c"])
    assert same.same_article  # both copies of one original, though stored as copies of different articles
    data = json.loads(render_digest(digest, "json"))
    source = data["stories"][0]["sources"][0]
    assert source["article_id"] == ids["o"] and source["source"] == "Wire"


def test_tracking_parameters_never_shown(reprint_first, tmp_path, capsys):
    database, ids = reprint_first
    with Aggregator(database=database) as agg:
        story = agg.stories()[0]
        detail = agg.story(story.id)
        digest = agg.digest(START.date())
    assert story.url == CLEAN and story.sources[0].url == CLEAN
    assert next(a for a in detail.articles if a.id == ids["o"]).url == CLEAN

    outputs = []
    for command in (["story", str(story.id)], ["story", str(story.id), "--format", "json"],
                    ["stories", "--format", "json"], ["export"],
                    ["digest", "--date", START.date().isoformat(), "--format", "markdown"]):
        assert main(["--database", database, *command]) == 0
        outputs.append(capsys.readouterr().out)
    for fmt in ("text", "html", "json"):
        outputs.append(render_digest(digest, fmt))
    for out in outputs:
        assert "wire.example/harbour-wall?id=7" in out, out[:300]
        assert "utm_" not in out and "fbclid" not in out


def test_cli_shows_times_in_the_configured_zone(reprint_first, tmp_path, capsys):
    database, ids = reprint_first
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  timezone: Asia/Tokyo\nfeeds: []\n")
    common = ["--config", str(config), "--database", database]
    assert main([*common, "stories"]) == 0
    assert "2026-11-24 18:30 JST" in capsys.readouterr().out  # last updated 09:30 UTC
    assert main([*common, "story", "1"]) == 0
    out = capsys.readouterr().out
    assert "first seen 2026-11-24 17:00 JST" in out and "2026-11-24 18:00 JST" in out and " UTC" not in out
    assert main([*common, "digest", "--date", "2026-11-24"]) == 0
    assert "17:00 JST" in capsys.readouterr().out
    assert main([*common, "stories", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["last_updated"] == "2026-11-24T09:30:00Z"
