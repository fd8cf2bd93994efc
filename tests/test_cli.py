"""The command line, run in-process as a user would type it."""

import json

import pytest

from aggregator.cli import main


def test_bad_config_names_key_and_line_and_exits_2(tmp_path, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  poll_interval: 15m\nfeeds:\n  - name: A\n    url: https://a.example/feed\n"
                      "    intervall: 5m\n")
    assert main(["--config", str(config), "poll"]) == 2
    err = capsys.readouterr().err
    assert "feeds.0.intervall" in err and ":6:" in err


def test_deprecated_setting_warns_on_stderr_with_its_line(tmp_path, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  allow_private_networks: true\nfeeds: []\n")
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/w.db", "poll"]) == 1  # no feeds
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith(f"aggregator: warning: {config}:2: settings.allow_private_networks is deprecated")
    assert "allowed_networks" in line


def test_bad_allowed_network_names_key_and_line_and_exits_2(tmp_path, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  allowed_networks:\n    - 192.168.1.0/24\n    - 192.168.1.300\nfeeds: []\n")
    assert main(["--config", str(config), "poll"]) == 2
    assert capsys.readouterr().err == (
        f"aggregator: config error: {config}:4: settings.allowed_networks.1: expected an address or CIDR network "
        "such as 192.168.1.0/24, got '192.168.1.300'\n"
    )


def test_missing_config_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml"), "poll"]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_global_options_work_after_the_command(tmp_path, demo_config_file, capsys):
    database = f"sqlite:///{tmp_path}/after.db"
    assert main(["poll", "--config", str(demo_config_file), "--database", database]) == 0
    assert "new articles" in capsys.readouterr().out


def test_database_from_environment(tmp_path, demo_config_file, monkeypatch, capsys):
    monkeypatch.setenv("AGGREGATOR_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert main(["--config", str(demo_config_file), "poll"]) == 0
    assert (tmp_path / "env.db").exists()


def test_stories_story_explain_digest_export_feeds(polled, tmp_path, capsys):
    capsys.readouterr()
    assert main([*polled, "stories", "--format", "json", "--min-sources", "2"]) == 0
    stories = json.loads(capsys.readouterr().out)
    assert stories and all(s["source_count"] >= 2 for s in stories)
    top = stories[0]

    assert main([*polled, "stories", "--search", "budapest"]) == 0
    assert "Budapest" in capsys.readouterr().out

    assert main([*polled, "story", str(top["id"])]) == 0
    out = capsys.readouterr().out
    assert f"story {top['id']}" in out and "copy of #" in out
    for story in stories:  # an article that started a story reads so (how_joined), never "new-story 0.00"
        assert main([*polled, "story", str(story["id"])]) == 0
        assert "new-story" not in capsys.readouterr().out

    assert main([*polled, "story", "999999"]) == 1
    assert "no story" in capsys.readouterr().err

    ids = [s["article_id"] for s in top["sources"]]
    copy_id = top["sources"][0]["copies"][0]["article_id"] if top["sources"][0]["copies"] else ids[1]
    assert main([*polled, "explain", str(ids[0]), str(copy_id)]) == 0
    out = capsys.readouterr().out
    assert "share of the shorter text in the longer" in out and "THRESHOLD" in out
    assert "new-story" not in out and f"(story {top['id']}, " in out  # how each came in, as `story` words it

    assert main([*polled, "digest", "--date", "2026-11-24", "--format", "html", "--output",
                 str(tmp_path / "d.html")]) == 0
    page = (tmp_path / "d.html").read_text()
    assert "<html" in page and "Budapest" in page

    assert main([*polled, "export", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["story"] for r in rows)

    assert main([*polled, "feeds"]) == 0
    out = capsys.readouterr().out
    assert "Continental Press" in out and "ok" in out


def test_feeds_opml_export_and_import(tmp_path, demo_config_file, capsys):
    opml = tmp_path / "feeds.opml"
    assert main(["--config", str(demo_config_file), "feeds", "export", str(opml)]) == 0
    target = tmp_path / "other.yaml"
    target.write_text("# my feeds\nfeeds:\n")
    assert main(["--config", str(target), "feeds", "import", str(opml)]) == 0
    assert "imported 3 new feeds" in capsys.readouterr().out
    assert target.read_text().startswith("# my feeds")
    assert main(["--config", str(target), "feeds", "import", str(opml)]) == 0
    assert "imported 0 new feeds" in capsys.readouterr().out


def test_replay_scores_a_labelled_file(tmp_path, capsys):
    base = ("Officials in the harbour city confirmed on Tuesday that the main sea wall will be rebuilt over the "
            "winter, after the storm in October damaged more than forty metres of it and flooded the quay. ")
    other = ("The national football league announced a new schedule for the spring season, moving twelve "
             "matches to midweek evenings to make room for the international break in March and April. ")
    rows = [
        {"id": "a", "title": "Sea wall to be rebuilt", "text": base * 3, "published": "2026-11-24T08:00:00Z",
         "source": "One", "url": "https://one.example/a", "story": "wall"},
        {"id": "b", "title": "UPDATE 1-Sea wall to be rebuilt", "text": "CITY (Wire) - " + base * 3,
         "published": "2026-11-24T09:00:00Z", "source": "Two", "url": None, "story": "wall"},
        {"id": "c", "title": "League moves matches", "text": other * 3, "published": None, "source": None,
         "url": None, "story": "league"},
    ]
    data = tmp_path / "gold.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out_file = tmp_path / "pred.jsonl"
    assert main(["replay", str(data), "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "bcubed_f1=1.0000" in out and "articles/s" in out
    predictions = {r["id"]: r["story"] for r in map(json.loads, out_file.read_text().splitlines())}
    assert predictions["a"] == predictions["b"] != predictions["c"]


def _arrivals(database: str) -> list:
    from sqlmodel import Session, select

    from aggregator.models import Article
    from aggregator.store import open_database

    engine = open_database(database)
    try:
        with Session(engine) as session:
            return list(session.exec(select(Article.fetched_at).order_by(Article.id)).all())
    finally:
        engine.dispose()


def _untimed_rows(sources: list[str]) -> list[dict]:
    """One story's headlines without publication times, one a source."""
    return [{"id": str(n), "title": f"Harbour wall repair number {n}", "text": None, "published": None,
             "source": source, "url": None, "story": "wall"} for n, source in enumerate(sources)]


def _write_rows(path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_replayed_articles_arrive_in_the_files_period_or_the_replays_not_in_1970(tmp_path, capsys):
    from datetime import datetime, timedelta

    from aggregator.models import utcnow

    untimed = _untimed_rows(["One"] * 3)
    data = tmp_path / "untimed.jsonl"
    _write_rows(data, untimed)
    database = f"sqlite:///{tmp_path}/untimed.db"
    started = utcnow().replace(microsecond=0)
    assert main(["--database", database, "replay", str(data)]) == 0
    arrivals = _arrivals(database)
    assert len(arrivals) == 3 and arrivals == sorted(arrivals)  # in the file's order...
    assert started <= arrivals[0] and arrivals[-1] - arrivals[0] < timedelta(seconds=1)  # ...as of the replay

    mixed = [{**untimed[0], "id": "m0"}, {**untimed[1], "id": "m1", "published": "2014-12-29T08:00:00Z"},
             {**untimed[2], "id": "m2"}]
    _write_rows(data, mixed)
    database = f"sqlite:///{tmp_path}/mixed.db"
    assert main(["--database", database, "replay", str(data)]) == 0
    capsys.readouterr()
    first, timed, after = _arrivals(database)
    assert datetime(2014, 12, 29, 7, 59) < first < timed < after < datetime(2014, 12, 29, 8, 0, 1)


def test_a_replay_as_of_a_day_dates_the_untimed_articles_then_and_files_them_in_that_days_digest(tmp_path, capsys):
    from datetime import datetime

    data = tmp_path / "old.jsonl"
    _write_rows(data, _untimed_rows([f"Outlet {n}" for n in range(3)]))
    database = f"sqlite:///{tmp_path}/old.db"
    assert main(["--database", database, "replay", str(data), "--as-of", "2013-11-27T09:00+01:00"]) == 0
    arrivals = _arrivals(database)
    assert datetime(2013, 11, 27, 8, 0) < arrivals[0] < arrivals[-1] < datetime(2013, 11, 27, 8, 0, 1)
    capsys.readouterr()
    assert main(["--database", database, "digest", "--date", "2013-11-27", "--format", "json"]) == 0
    stories = json.loads(capsys.readouterr().out)["stories"]
    assert len(stories) == 1 and len(stories[0]["sources"]) == 3

    for bad in ("yesterday", "2013-13-01", "9999-01-01"):
        with pytest.raises(SystemExit):
            main(["--database", database, "replay", str(data), "--as-of", bad])
        assert "--as-of" in capsys.readouterr().err


def test_replay_rejects_a_bad_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "title": "x", "source": null}\nnot json\n')
    assert main(["replay", str(data)]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_example_script_uses_the_library_api(polled, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "top_stories.py"
    database = polled[polled.index("--database") + 1]
    env = {**__import__("os").environ, "PYTHONPATH": str(script.parents[1])}  # this checkout's package
    result = subprocess.run([sys.executable, str(script), "--database", database, "--hours", "1000000"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "sources]" in result.stdout and "Continental Press" in result.stdout


def test_poll_refuses_while_a_daemon_holds_the_database(tmp_path, demo_config_file, capsys):
    from aggregator.store import DaemonLock, open_database

    database = f"sqlite:///{tmp_path}/locked.db"
    with DaemonLock(open_database(database)):
        assert main(["--config", str(demo_config_file), "--database", database, "poll"]) == 1
    assert "already running" in capsys.readouterr().err
    assert main(["--config", str(demo_config_file), "--database", database, "poll"]) == 0


def test_poll_exit_status_and_a_line_per_problem_feed(tmp_path, demo_site, demo_config_file, capsys):
    """0 when every feed was polled; 1 with a line naming the feed and why when one failed or was skipped."""
    common = ["--config", str(demo_config_file), "--database", f"sqlite:///{tmp_path}/status.db"]
    assert main([*common, "poll"]) == 0
    captured = capsys.readouterr()
    assert "polled 3 of 3 feeds" in captured.out and "failed" not in captured.out

    demo_site.remove("/valley-courier/feed.json")
    assert main([*common, "poll"]) == 1
    captured = capsys.readouterr()
    assert "polled 2 of 3 feeds: 0 new articles; 1 failed, 0 skipped" in captured.out
    assert "aggregator: Tern Valley Courier: failed: " in captured.err and "404" in captured.err

    assert main([*common, "poll"]) == 1  # the failed feed now rests: skipped, and the line says how to force it
    captured = capsys.readouterr()
    assert "1 failed" not in captured.out and "1 skipped" in captured.out
    assert "aggregator: Tern Valley Courier: skipped: resting until" in captured.err
    assert "--force polls it now" in captured.err

    demo_site.route("/valley-courier/feed.json", lambda h: (h.send_response(410), h.end_headers()))
    assert main([*common, "poll", "--force", "--feed", "Tern Valley Courier"]) == 1  # polled, and gone: paused
    assert "polled 0 of 1 feeds" in capsys.readouterr().out
    assert main([*common, "poll"]) == 1
    err = capsys.readouterr().err
    assert "aggregator: Tern Valley Courier: skipped: paused: the server says the feed is gone" in err
    assert "aggregator feeds resume 'Tern Valley Courier'" in err


def test_poll_of_a_config_without_enabled_feeds_says_so(tmp_path, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds:\n  - name: Quiet\n    url: https://quiet.example/feed\n    enabled: false\n")
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/none.db", "poll"]) == 1
    assert "lists no enabled feeds: there is nothing to poll" in capsys.readouterr().err


def _replay_line(**fields):
    row = {"id": "a", "title": "Sea wall to be rebuilt", "text": None, "published": None, "source": None}
    row.update(fields)
    return json.dumps({k: v for k, v in row.items() if v != "-"})


def test_replay_names_the_missing_or_bad_field_and_its_line_before_any_work(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    lines = [
        _replay_line(id="ok"),
        _replay_line(id="-"),
        _replay_line(id="t", title="-"),
        _replay_line(id="s", source="-"),
        _replay_line(id="p", published="last Tuesday"),
        _replay_line(id={"a": 1}),
        "[1, 2]",
        _replay_line(id="ok"),
    ]
    data.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(data)]) == 1
    captured = capsys.readouterr()
    assert "articles" not in captured.out  # nothing was replayed
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("aggregator: ")
    assert f"{data}:2: missing field 'id'" in err
    assert "line 3: missing field 'title'" in err
    assert "line 4: missing field 'source'" in err
    assert "line 5: field 'published' is not an ISO 8601 time: 'last Tuesday'" in err
    assert "line 6: field 'id' must be a string or a number, got an object" in err
    assert "(and 2 more problems)" in err  # line 7 is no object, line 8 repeats an id

    data.write_text(_replay_line(id=7, story=3) + "\n" + _replay_line(id="b", title=None) + "\n")
    assert main(["replay", str(data)]) == 1
    assert f"{data}:2: field 'title' must be a string, got null" in capsys.readouterr().err

    data.write_bytes(_replay_line().encode() + b"\n" + b'{"id": "b", "title": "caf\xe9", "source": null}\n')
    assert main(["replay", str(data)]) == 1
    assert f"{data}:2: not UTF-8 text" in capsys.readouterr().err

    data.write_text("\n\n")
    assert main(["replay", str(data)]) == 1
    assert "no articles" in capsys.readouterr().err

    data.write_text(_replay_line(published="9999-12-31T23:59:59.999999Z") + "\n")
    assert main(["replay", str(data)]) == 1
    assert f"{data}:1: field 'published' is past the year 9000" in capsys.readouterr().err


def test_replay_into_a_database_it_filled_before_says_so(tmp_path, capsys):
    data = tmp_path / "gold.jsonl"
    data.write_text(_replay_line(id="a", story="x") + "\n" + _replay_line(id="b", title="Other", story=None) + "\n")
    database = f"sqlite:///{tmp_path}/replay.db"
    assert main(["replay", str(data), "--database", database]) == 0
    assert "no scores: 1 of 2 articles have no 'story'" in capsys.readouterr().out
    assert main(["replay", str(data), "--database", database]) == 1
    assert "already holds 2 of these 2 articles" in capsys.readouterr().err


def test_feeds_import_says_what_it_skipped_and_refuses_an_opml_without_feeds(tmp_path, capsys):
    target = tmp_path / "feeds.yaml"
    target.write_text("feeds:\n")
    opml = tmp_path / "in.opml"
    opml.write_text('<opml version="2.0"><body><outline text="A" xmlUrl="https://a.example/feed"/>'
                    '<outline text="B" xmlUrl="ftp://b.example/feed"/><outline text="C" htmlUrl="https://c.example/"/>'
                    '<outline text="D" xmlUrl="https://d.example/feed" aggregatorInterval="now"/>'
                    '<outline text="D again" xmlUrl="https://d.example/feed"/></body></opml>')
    assert main(["--config", str(target), "feeds", "import", str(opml)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 new feeds" in out
    assert "skipped 3 outlines: 1 without xmlUrl, 1 not http(s), 1 listed twice" in out
    assert "ignored 1 invalid setting: 1 aggregatorInterval" in out

    opml.write_text('<opml version="2.0"><body><outline text="B" xmlUrl="ftp://b.example/feed"/></body></opml>')
    before = target.read_text()
    assert main(["--config", str(target), "feeds", "import", str(opml)]) == 1
    assert "no feeds to import (skipped 1 outline: 1 not http(s))" in capsys.readouterr().err
    assert target.read_text() == before


def test_poll_says_when_entries_of_a_feed_could_not_be_read(tmp_path, site, capsys):
    items = "<item><title>Readable</title><guid>r1</guid></item>" + "<item><description></description></item>" * 2
    site.put("/feed.xml", f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>',
             "application/rss+xml")
    config = tmp_path / "feeds.yaml"
    config.write_text(f"settings:\n  allow_private_networks: true\nfeeds:\n  - name: Half\n"
                      f"    url: {site.url('/feed.xml')}\n    full_text: false\n")
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/half.db", "poll"]) == 0
    captured = capsys.readouterr()
    assert "polled 1 of 1 feeds: 1 new articles" in captured.out
    assert "aggregator: Half: polled, but 2 of its entries could not be read" in captured.err
