"""The command line, run in-process as a user would type it."""

import json

import pytest

from aggregator.cli import main


@pytest.fixture
def polled(tmp_path, demo_config_file, monkeypatch):
    """A database filled by one `aggregator poll` over the three demo outlets."""
    monkeypatch.chdir(tmp_path)
    database = f"sqlite:///{tmp_path}/cli.db"
    assert main(["--config", str(demo_config_file), "--database", database, "poll"]) == 0
    return ["--config", str(demo_config_file), "--database", database]


def test_bad_config_names_key_and_line_and_exits_2(tmp_path, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  poll_interval: 15m\nfeeds:\n  - name: A\n    url: https://a.example/feed\n"
                      "    intervall: 5m\n")
    assert main(["--config", str(config), "poll"]) == 2
    err = capsys.readouterr().err
    assert "feeds.0.intervall" in err and ":6:" in err


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

    assert main([*polled, "story", "999999"]) == 1
    assert "no story" in capsys.readouterr().err

    ids = [s["article_id"] for s in top["sources"]]
    copy_id = top["sources"][0]["copies"][0]["article_id"] if top["sources"][0]["copies"] else ids[1]
    assert main([*polled, "explain", str(ids[0]), str(copy_id)]) == 0
    out = capsys.readouterr().out
    assert "containment" in out and "threshold" in out

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


def test_replay_rejects_a_bad_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "title": "x"}\nnot json\n')
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
