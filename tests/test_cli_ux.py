"""What a user expects of the command line: a version, a quick start, progress on long work, readable output."""

import json
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

import aggregator
from aggregator.cli import main
from aggregator.cli.output import shorten
from aggregator.cluster import Signal

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("trafilatura", "datasketch", "scipy", "sqlalchemy", "sqlmodel")


def _modules_loaded_by(code: str, also: tuple[str, ...] = ()) -> list[str]:
    """The heavy modules (and ``also``) imported by ``code`` in a fresh interpreter (this checkout's package)."""
    names = HEAVY + also
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {names!r} if m in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["stories", "--help"]])
def test_help_and_version_import_no_heavy_dependency(argv):
    code = f"from aggregator.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
    assert _modules_loaded_by(code) == []


def test_a_read_command_imports_neither_extraction_nor_minhash(tmp_path):
    database = f"sqlite:///{tmp_path}/empty.db"
    code = f"from aggregator.cli import main\nmain(['--database', {database!r}, 'stories'])\n"
    assert _modules_loaded_by(code) == ["sqlalchemy", "sqlmodel"]


def test_package_names_are_exported_on_first_use():
    assert _modules_loaded_by("import aggregator") == []
    assert "sqlalchemy" in _modules_loaded_by("from aggregator import Aggregator")
    assert aggregator.Aggregator.__module__ == "aggregator.api"
    assert set(aggregator.__all__) <= set(dir(aggregator))
    with pytest.raises(AttributeError):
        aggregator.NoSuchThing  # noqa: B018


def test_version_is_printed_and_written_once(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"aggregator {aggregator.__version__}\n"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aggregator.__version__"}


# ---- replay progress ----------------------------------------------------------------------------------------


def _replay_file(tmp_path: Path) -> Path:
    rows = [
        {"id": str(n), "title": f"Harbour wall repair number {n}", "text": None, "published": None,
         "source": "One", "url": None, "story": "wall"}
        for n in range(3)
    ]
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replay_reports_progress_to_a_callback(tmp_path):
    from aggregator.replay import read_rows, replay

    calls = []
    report = replay(read_rows(_replay_file(tmp_path)), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert report.articles == 3


def test_replay_draws_a_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    path = _replay_file(tmp_path)
    assert main(["replay", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "bcubed_f1=" in captured.out  # piped: no bar, no control characters

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["replay", str(path)]) == 0
    captured = capsys.readouterr()
    assert "replaying" in captured.err and "/3 [" in captured.err and " articles/s" in captured.err
    assert "replaying" not in captured.out and "bcubed_f1=" in captured.out


# ---- explain ------------------------------------------------------------------------------------------------


def test_signals_read_in_plain_words_with_units():
    gap = Signal("hours-apart", 5.23, 72.0, True)
    assert (gap.label, gap.value_text, gap.threshold_text) == ("time apart", "5.2 h", "at most 72 h")
    assert gap.verdict == "met"
    share = Signal("containment", 0.64, 0.5, True)
    assert (share.value_text, share.threshold_text) == ("64 %", "at least 50 %")
    same = Signal("text-hash", 0.0, 1.0, False)
    assert (same.value_text, same.threshold_text, same.verdict) == ("no", "yes", "missed")
    words = Signal("shared-terms", 1.0, 2.0, False)
    assert (words.value_text, words.threshold_text) == ("1 word", "at least 2 words")
    assert Signal("minhash", 0.0, None, False).verdict == "not run: too little text"
    assert gap.describe() == "time apart: 5.2 h (met threshold: at most 72 h)"


def test_explain_prints_a_table_of_signals(polled, capsys):
    capsys.readouterr()
    assert main([*polled, "stories", "--format", "json", "--min-sources", "2"]) == 0
    top = json.loads(capsys.readouterr().out)[0]
    ids = [s["article_id"] for s in top["sources"]]
    assert main([*polled, "explain", str(ids[0]), str(ids[1])]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "SIGNAL" in line)
    assert header.split() == ["SIGNAL", "VALUE", "THRESHOLD", "VERDICT"]
    gap_line = next(line for line in out.splitlines() if line.strip().startswith("time apart"))
    assert " h " in gap_line and "at most 72 h" in gap_line and gap_line.rstrip().endswith("met")
    assert "hours-apart" not in out and "term-cosine" not in out


def test_explain_says_it_takes_article_ids(polled, capsys):
    from sqlmodel import Session

    from aggregator.models import Story
    from aggregator.store import open_database

    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    assert "article id" in capsys.readouterr().out

    assert main([*polled, "explain", "1", "99999"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aggregator: no article with id 99999") and "takes article ids" in err
    assert err.count("\n") == 1

    engine = open_database(polled[-1])
    with Session(engine) as session:
        session.add(Story(id=5000, title="A story whose id is no article's"))
        session.commit()
    engine.dispose()
    assert main([*polled, "explain", "5000", "1"]) == 1
    assert "5000 is a story id" in capsys.readouterr().err


# ---- feeds --------------------------------------------------------------------------------------------------


def test_shorten_cuts_at_a_word_boundary():
    assert shorten("Meridian Broadcasting Network of the North", 28) == "Meridian Broadcasting…"
    assert shorten("short name", 28) == "short name"
    assert shorten("Supercalifragilisticexpialidocious News", 10) == "Supercali…"


def test_feeds_shows_until_when_a_feed_rests_and_keeps_words_whole(polled, capsys):
    from sqlmodel import Session, select

    from aggregator.models import Feed, utcnow
    from aggregator.store import open_database

    error = ("HTTP 503 Service Unavailable: the server answered with a maintenance page that apologises at length "
             "for the inconvenience to every reader of this feed and promises to be back soon")
    until = utcnow() + timedelta(minutes=40)
    engine = open_database(polled[-1])
    with Session(engine) as session:
        resting, failing = session.exec(select(Feed).order_by(Feed.id)).all()[:2]
        resting.name = "The Extraordinarily Long-Named Regional Broadcaster"
        resting.consecutive_errors, resting.retry_after, resting.last_error = 3, until, error
        failing.consecutive_errors, failing.last_error = 1, "timed out after 20 s"
        failing.retry_after = utcnow() - timedelta(minutes=5)  # its rest is over: polled at its next turn
        failing_name = failing.name
        session.add_all([resting, failing])
        session.commit()
    engine.dispose()
    capsys.readouterr()
    assert main([*polled, "feeds"]) == 0
    out = capsys.readouterr().out
    assert f"resting until {until:%Y-%m-%d %H:%M} UTC" in out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "resting" in rows["The Extraordinarily Long-…"]
    assert "failing" in rows[failing_name] and "resting" not in rows[failing_name]
    notes = " ".join(line.strip() for line in out.splitlines() if line.startswith(" " * 28))
    assert error in notes  # wrapped over lines, never cut inside a word


def test_a_poll_that_finds_nothing_new_loads_neither_the_orm_nor_the_clustering_engine(polled):
    code = f"from aggregator.cli import main\nassert main({polled!r} + ['poll']) == 0\n"
    assert _modules_loaded_by(code, also=("numpy", "feedparser", "courlan", "rich")) == []
