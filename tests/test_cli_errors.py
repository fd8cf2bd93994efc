"""A user's mistakes on the command line: one clear line, the right exit status, and no work done first."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from aggregator.cli import main
from aggregator.store import DaemonLock, open_database

HERE = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout
READ_COMMANDS = [["stories"], ["digest"], ["story", "1"], ["export"], ["explain", "1", "2"], ["feeds"]]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working folder: no ./feeds.yaml, no ./aggregator.db."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("AGGREGATOR_DATABASE_URL", raising=False)
    return folder


@pytest.fixture
def database(tmp_path):
    """An aggregator database with its schema and nothing in it."""
    url = f"sqlite:///{tmp_path}/news.db"
    open_database(url).dispose()
    return url


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aggregator: ")
    return lines[0]


# ---- opening the database ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_read_commands_do_not_create_a_mistyped_database(elsewhere, command, capsys):
    assert main(["--database", "sqlite:///newz.db", *command]) == 1
    assert "database newz.db does not exist" in _one_line(capsys.readouterr().err)
    assert not (elsewhere / "newz.db").exists()


def test_the_default_database_is_not_created_by_reading(elsewhere, capsys):
    assert main(["stories"]) == 1
    assert "aggregator.db does not exist" in _one_line(capsys.readouterr().err)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("notes.yaml", "notes.yaml is not a SQLite database"),
        (".", ". is a folder, not a database file"),
        ("mysql://user@db.example/news", "unsupported database 'mysql'"),
        ("empty.db", "empty.db is not an aggregator database"),
    ],
)
def test_a_wrong_database_gives_one_line(elsewhere, database, message, capsys):
    (elsewhere / "notes.yaml").write_text("Notes on the feeds I read.\n" * 200)
    (elsewhere / "empty.db").touch()
    assert main(["--database", database, "stories"]) == 1
    assert message in _one_line(capsys.readouterr().err)


def test_a_refused_postgresql_connection_gives_one_line(elsewhere, capsys):
    pytest.importorskip("psycopg")
    assert main(["--database", "postgresql://me:secret@127.0.0.1:1/news", "stories"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "cannot open database postgresql://me:***@127.0.0.1:1/news" in line and "secret" not in line


def _damage(path, start: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(b"\xde\xad\xbe\xef" * 4096)


def test_a_damaged_database_gives_one_line_that_says_what_to_do(database, tmp_path, capsys):
    path = tmp_path / "news.db"
    _damage(path, 4096)
    for command in (["stories"], ["export"]):
        assert main(["--database", database, *command]) == 1
        line = _one_line(capsys.readouterr().err)
        assert f"database {path} is damaged" in line and "backup" in line and ".recover" in line


def test_damage_found_while_reading_gives_one_line(database, tmp_path, monkeypatch, capsys):
    """Damage in pages the start-up does not read shows up in a query: the same one line."""
    import sqlite3

    from sqlalchemy.exc import DatabaseError

    from aggregator.api import Aggregator

    def malformed(*args, **kwargs):
        raise DatabaseError("SELECT ...", {}, sqlite3.DatabaseError("database disk image is malformed"))

    monkeypatch.setattr(Aggregator, "stories", malformed)
    assert main(["--database", database, "stories"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"database {tmp_path / 'news.db'} is damaged (database disk image is malformed)" in line


def test_damage_in_article_pages_found_by_a_query(demo_config_file, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/full.db"
    assert main(["--config", str(demo_config_file), "--database", url, "poll"]) == 0
    engine = open_database(url)
    with engine.connect() as connection:
        root = connection.execute(text("SELECT rootpage FROM sqlite_master WHERE name = 'article'")).scalar()
        page_size = connection.execute(text("PRAGMA page_size")).scalar()
        connection.commit()
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # every page in the file, none in the WAL
    engine.dispose()
    _damage(tmp_path / "full.db", (root - 1) * page_size)  # the article table's own pages
    capsys.readouterr()
    assert main(["--database", url, "export"]) == 1
    assert "is damaged" in _one_line(capsys.readouterr().err)


# ---- argument values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
@pytest.mark.parametrize("option", [["stories", "--limit"], ["stories", "--min-sources"], ["digest", "--min-sources"]])
def test_counts_refuse_nonsense(option, value, capsys):
    with pytest.raises(SystemExit) as info:
        main([*option, value])
    assert info.value.code == 2
    assert f"{option[1]}: expected a whole number of at least 1, got '{value}'" in capsys.readouterr().err


# ---- output paths, checked before any work -------------------------------------------------------------


def test_output_paths_are_checked_before_any_work(tmp_path, demo_config_file, elsewhere, capsys):
    missing = tmp_path / "missing" / "out"
    cases = [
        ["digest", "--output", str(missing)],
        ["export", "--output", str(missing)],
        ["--config", str(demo_config_file), "feeds", "export", str(missing)],
        ["digest", "--output", str(tmp_path)],
    ]
    for command in cases:
        # no database exists: the output path is refused first, so nothing is opened or created
        assert main(["--database", "sqlite:///never.db", *command]) == 1, command
        line = _one_line(capsys.readouterr().err)
        assert f"cannot write {command[-1]}: " in line
        assert ("does not exist" if "missing" in command[-1] else "it is a folder") in line
    assert list(elsewhere.iterdir()) == []


def test_replay_checks_its_output_before_replaying(tmp_path, capsys, monkeypatch):
    import aggregator.replay

    data = tmp_path / "gold.jsonl"
    data.write_text(json.dumps({"id": "a", "title": "Sea wall to be rebuilt", "story": "wall"}) + "\n")
    monkeypatch.setattr(aggregator.replay, "replay", lambda *a, **k: pytest.fail("replayed before the check"))
    assert main(["replay", str(data), "--out", str(tmp_path / "missing" / "pred.jsonl")]) == 1
    assert "folder" in _one_line(capsys.readouterr().err)


def test_an_existing_output_is_left_alone_by_the_check(database, tmp_path):
    out = tmp_path / "digest.txt"
    out.write_text("yesterday")
    assert main(["--database", database, "digest", "--date", "2026-11-24", "--output", str(out)]) == 0
    assert out.read_text() != "yesterday"
    other = tmp_path / "new.txt"
    assert main(["--database", database, "export", "--output", str(other)]) == 0
    assert other.read_text() == ""


def test_feeds_import_checks_the_config_before_reading_the_opml(tmp_path, demo_config_file, capsys):
    opml = tmp_path / "feeds.opml"
    assert main(["--config", str(demo_config_file), "feeds", "export", str(opml)]) == 0
    assert main(["--config", str(tmp_path / "missing" / "feeds.yaml"), "feeds", "import", str(opml)]) == 1
    assert "folder" in _one_line(capsys.readouterr().err)

    broken = tmp_path / "broken.yaml"
    broken.write_text("feeds:\n  - name: A\n    url: ftp://a.example/\n")
    before = broken.read_text()
    assert main(["--config", str(broken), "feeds", "import", str(opml)]) == 2
    assert "broken.yaml:3: feeds.0.url" in capsys.readouterr().err
    assert broken.read_text() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_feeds_import_into_a_read_only_config(tmp_path, demo_config_file, capsys):
    opml = tmp_path / "feeds.opml"
    assert main(["--config", str(demo_config_file), "feeds", "export", str(opml)]) == 0
    config = tmp_path / "mine.yaml"
    config.write_text("feeds:\n")
    config.chmod(0o444)
    assert main(["--config", str(config), "feeds", "import", str(opml)]) == 1
    assert "Permission denied" in _one_line(capsys.readouterr().err)


# ---- the config at start ---------------------------------------------------------------------------------


def test_an_unknown_time_zone_is_a_config_error_not_a_crash(tmp_path, database, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  timezone: Mars/Olympus\nfeeds: []\n")
    for command in (["digest"], ["run"]):
        assert main(["--config", str(config), "--database", database, *command]) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"{config}:2: settings.timezone: unknown time zone 'Mars/Olympus'" in line


def test_run_refuses_a_digest_dir_it_cannot_write_before_opening_the_database(tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  digest_dir: blocker/digests\nfeeds:\n  - name: A\n    url: https://a.example/\n")
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/run.db", "run"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"settings.digest_dir: cannot write digests to {tmp_path / 'blocker' / 'digests'}" in line
    assert not (tmp_path / "run.db").exists()


def test_digest_dir_is_resolved_against_the_config_folder(tmp_path):
    from aggregator.config import load_config
    from aggregator.scheduler import check_digest_folder

    config = tmp_path / "conf" / "feeds.yaml"
    config.parent.mkdir()
    config.write_text("settings:\n  digest_dir: out/daily\n")
    assert check_digest_folder(load_config(config)) == tmp_path / "conf" / "out" / "daily"
    assert (tmp_path / "conf" / "out" / "daily").is_dir()
    assert list((tmp_path / "conf" / "out" / "daily").iterdir()) == []


@pytest.mark.parametrize("feeds", ["feeds: []\n", "feeds:\n  - {name: A, url: 'https://a.example/', enabled: no}\n"])
def test_a_config_with_no_feeds_warns_when_polling(tmp_path, feeds, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text(feeds)
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/p.db", "poll"]) == 1  # nothing polled
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aggregator: warning: {config} lists no enabled feeds")


# ---- Ctrl-C ------------------------------------------------------------------------------------------------


def test_ctrl_c_while_the_engine_reloads_exits_130_and_releases_the_lock(demo_config_file, tmp_path, monkeypatch):
    import aggregator.ingest

    url = f"sqlite:///{tmp_path}/daemon.db"

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(aggregator.ingest.Ingestor, "reload", interrupted)
    assert main(["--config", str(demo_config_file), "--database", url, "run"]) == 130
    with DaemonLock(open_database(url)):  # released: a new daemon may start
        pass


def test_ctrl_c_while_the_modules_load_exits_130(monkeypatch):
    import aggregator.__main__

    class Interrupt:
        def find_spec(self, name, path=None, target=None):
            if name == "aggregator.cli":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "aggregator.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    with pytest.raises(SystemExit) as info:
        aggregator.__main__.run()
    assert info.value.code == 130


def test_importing_the_command_line_does_not_load_the_engine():
    """The package is light to import, so a Ctrl-C in the first second lands in code that handles it."""
    code = "import sys, aggregator.__main__; print('aggregator.cluster' in sys.modules, 'numpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=HERE)
    assert result.stdout.split() == ["False", "False"]


def _interrupt_during_start_up(command: list[str], delay: float) -> tuple[int, str]:
    """Run ``aggregator COMMAND`` and send SIGINT ``delay`` seconds after its first module has loaded, while the
    rest load and the engine starts. (Before that, Python itself is starting: no program can make that quiet.)"""
    import threading

    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "aggregator", *command],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=HERE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    imported = threading.Event()

    def drain():
        for line in process.stderr:
            lines.append(line)
            if line.rstrip().endswith(" aggregator.config"):
                imported.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert imported.wait(60), "".join(lines)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    reader.join(10)
    return process.returncode, "".join(line for line in lines if not line.startswith("import time:"))


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8, 1.5])
def test_ctrl_c_during_start_up_has_no_traceback(demo_config_file, tmp_path, delay):
    url = f"sqlite:///{tmp_path}/startup.db"
    returncode, err = _interrupt_during_start_up(["--config", str(demo_config_file), "--database", url, "run"], delay)
    assert "Traceback" not in err, err
    # 130, or killed by the SIGINT itself when it lands as the interpreter exits (a shell shows 130 too);
    # 0 when the daemon was already up and stopped as asked
    assert returncode in (130, -signal.SIGINT, 0), (returncode, err)


# ---- found while looking for more of the same ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["story", "99999999999999999999"], "argument id: no such id"),
        (["explain", "1", "99999999999999999999"], "argument OTHER_ARTICLE_ID: no such id"),
        (["story", "0"], "argument id: expected a whole number of at least 1"),
        (["digest", "--date", "9999-12-31"], "expected a date between"),
        (["digest", "--date", "2026-13-01"], "expected a date as YYYY-MM-DD, got '2026-13-01'"),
    ],
)
def test_out_of_range_arguments_are_usage_errors_not_tracebacks(command, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_since_longer_than_ten_years_means_no_bound_as_on_the_web(database, capsys):
    # the CLI and the web share one parser: a duration past ten years (or 'all') is no lower bound at all
    assert main(["--database", database, "stories", "--since", "99999999999h"]) == 0
    assert main(["--database", database, "stories", "--since", "all"]) == 0


def test_replay_of_a_file_that_is_not_text(tmp_path, capsys):
    data = tmp_path / "binary.jsonl"
    data.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["replay", str(data)]) == 1
    err = _one_line(capsys.readouterr().err)
    assert str(data) in err and "not UTF-8 text" in err


def test_poll_of_an_unknown_feed_fails_before_creating_the_database(demo_config_file, tmp_path, capsys):
    assert main(["--config", str(demo_config_file), "--database", f"sqlite:///{tmp_path}/p.db", "poll",
                 "--feed", "Continental Pres"]) == 2
    assert "no feed named 'Continental Pres'" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "p.db").exists()


def test_the_example_script_does_not_create_a_mistyped_database(tmp_path):
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "top_stories.py"
    result = subprocess.run([sys.executable, str(script), "--database", str(tmp_path / "typo.db")],
                            capture_output=True, text=True, timeout=60, env=HERE)
    assert result.returncode == 1
    assert result.stderr.strip() == f"top_stories: database {tmp_path / 'typo.db'} does not exist: check --database " \
        "or the config's 'database' (`aggregator poll` or `aggregator run` creates it)"
    assert not (tmp_path / "typo.db").exists()


# ---- a new user's first hour, tried from a fresh clone ------------------------------------------------------


@pytest.mark.parametrize("yaml_text", [
    "a: &a [*a]\n",  # an alias inside its own anchor: a cycle
    "settings: {preferred_sources: &a [*a]}\n",
    "settings: &s {web: *s}\n",
    "l1: &l1 [a, b, c, d, e, f, g, h, i]\n"  # each level nine aliases of the one before: 9**8 paths
    + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(2, 9)),
])
def test_a_config_with_cyclic_or_exploding_yaml_aliases_is_a_config_error(tmp_path, database, yaml_text, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text(yaml_text)
    started = time.monotonic()
    assert main(["--config", str(config), "--database", database, "stories"]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"aggregator: config error: {config}:1: ")
    assert time.monotonic() - started < 10


def test_yaml_aliases_that_repeat_a_value_still_work(tmp_path):
    from aggregator.config import parse_config

    config = parse_config("feeds:\n  - {name: A, url: 'https://a.example/', tags: &t [x, y]}\n"
                          "  - {name: B, url: 'https://b.example/', tags: *t}\n")
    assert [feed.tags for feed in config.feeds] == [["x", "y"], ["x", "y"]]


@pytest.mark.parametrize("since", ["0001-01-01T00:00+05:00", "9999-12-31T23:00-05:00"])
def test_a_since_time_out_of_range_in_utc_is_a_usage_error(since, capsys):
    with pytest.raises(SystemExit) as info:
        main(["stories", "--since", since])
    assert info.value.code == 2
    assert f"argument --since: '{since}' is out of range in UTC" in capsys.readouterr().err


def test_a_since_time_with_an_offset_is_compared_in_utc(database, capsys):
    assert main(["--database", database, "stories", "--since", "2020-01-01T05:00+05:00"]) == 0
    assert capsys.readouterr().out.strip() == "No stories match."


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(port, capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", port])
    assert info.value.code == 2
    assert f"argument --port: expected a port number from 0 to 65535, got '{port}'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["poll"], ["replay", "rows.jsonl"]])
def test_a_folder_as_the_database_of_a_command_that_creates_it(tmp_path, demo_config_file, command, capsys):
    (tmp_path / "news.db").mkdir()
    (tmp_path / "rows.jsonl").write_text('{"id": 1, "title": "t", "source": "s", "url": "https://a.example/"}\n')
    command = [str(tmp_path / part) if part.endswith(".jsonl") else part for part in command]
    assert main(["--config", str(demo_config_file), "--database", f"sqlite:///{tmp_path}/news.db", *command]) == 1
    assert f"{tmp_path / 'news.db'} is a folder, not a database file" in _one_line(capsys.readouterr().err)


def test_an_empty_search_is_refused_not_ignored(database, capsys):
    assert main(["--database", database, "stories", "--search", ""]) == 2
    assert _one_line(capsys.readouterr().err) == "aggregator: empty search: give one or more words"


def test_digest_refuses_email_and_output_together(database, tmp_path, capsys):
    assert main(["--database", database, "digest", "--email", "--output", str(tmp_path / "d.txt")]) == 2
    assert "give one of them" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "d.txt").exists()


@pytest.mark.parametrize("hours", ["1e12", "-3", "0", "nan"])
def test_the_example_script_refuses_nonsense_hours(hours):
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "top_stories.py"
    result = subprocess.run([sys.executable, str(script), "--hours", hours], capture_output=True, text=True,
                            timeout=60, env=HERE)
    assert result.returncode == 2
    assert "argument --hours: expected" in result.stderr and "Traceback" not in result.stderr


def test_demo_refuses_a_database_that_holds_other_feeds(tmp_path, elsewhere, capsys):
    from aggregator.models import Feed
    from aggregator.store import session_scope

    url = f"sqlite:///{tmp_path}/mine.db"
    engine = open_database(url)
    with session_scope(engine) as session:
        session.add(Feed(name="My paper", url="https://paper.example/feed"))
    engine.dispose()
    assert main(["--database", url, "demo"]) == 1
    assert "already holds other feeds" in _one_line(capsys.readouterr().err)
    with open_database(url).connect() as connection:
        assert connection.execute(text("select count(*) from feed")).scalar() == 1
        assert connection.execute(text("select count(*) from article")).scalar() == 0


def test_an_interrupted_export_leaves_the_output_file_as_it_was(database, tmp_path, monkeypatch, capsys):
    import aggregator.query

    output = tmp_path / "articles.jsonl"
    output.write_text("yesterday's export\n")
    output.chmod(0o640)

    def interrupted(engine):
        yield from ()
        raise KeyboardInterrupt

    monkeypatch.setattr(aggregator.query, "iter_articles", interrupted)
    assert main(["--database", database, "export", "--output", str(output)]) == 130
    assert output.read_text() == "yesterday's export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["articles.jsonl", "news.db"]
    monkeypatch.undo()

    link = tmp_path / "link.jsonl"
    link.symlink_to(output)
    assert main(["--database", database, "export", "--output", str(link)]) == 0
    assert link.is_symlink() and output.read_text() == ""  # no articles: the file the link points to, emptied
    assert output.stat().st_mode & 0o777 == 0o640


def test_poll_names_each_failed_feed_once(tmp_path):
    config = tmp_path / "feeds.yaml"
    config.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\n  timeout: 2\n"
                      "feeds:\n  - {name: Closed, url: 'http://127.0.0.1:9/feed.xml'}\n")
    command = ["--config", str(config), "--database", f"sqlite:///{tmp_path}/p.db", "poll"]
    result = subprocess.run([sys.executable, "-m", "aggregator", *command], capture_output=True, text=True,
                            timeout=60, env=HERE)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()  # not a log line as well
    assert line.startswith("aggregator: Closed: failed: fetch: cannot connect")


@pytest.mark.parametrize(("command", "message"), [
    (["feeds", "export", "--format", "json"], "--format is for feeds list, not feeds export"),
    (["feeds", "import", "x.opml", "--format", "table"], "--format is for feeds list, not feeds import"),
    (["feeds", "list", "extra"], "feeds list takes no file or name, got 'extra'"),
])
def test_feeds_options_that_do_not_apply_are_refused(database, command, message, capsys):
    assert main(["--database", database, *command]) == 2
    assert _one_line(capsys.readouterr().err) == f"aggregator: {message}"


def test_log_level_takes_any_case_as_the_config_does(database):
    assert main(["--log-level", "debug", "--database", database, "stories"]) == 0
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "loud", "stories"])
    assert info.value.code == 2


def test_an_output_in_a_folder_that_cannot_take_a_new_file_is_written_in_place(database, tmp_path, monkeypatch):
    import builtins

    output = tmp_path / "digest.txt"
    output.write_text("old\n")
    real_open = builtins.open

    def no_new_files(file, mode="r", *args, **kwargs):
        if str(file).endswith(".partial"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_new_files)
    assert main(["--database", database, "digest", "--output", str(output)]) == 0
    assert "News digest" in output.read_text()


def test_an_output_to_dev_stdout_is_written_to_the_pipe(database):
    result = subprocess.run([sys.executable, "-m", "aggregator", "--database", database, "digest", "--output",
                             "/dev/stdout"], capture_output=True, text=True, timeout=60, env=HERE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("News digest")


@pytest.mark.parametrize("command", [["stories", "--limit"], ["stories", "--min-sources"], ["digest", "--min-sources"],
                                     ["stories", "--search", "summit", "--min-sources"]])
def test_a_count_larger_than_the_database_holds_means_no_bound(database, command, capsys):
    assert main(["--database", database, *command, "99999999999999999999"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_config_that_is_not_text_or_is_a_folder_says_so(tmp_path, database, capsys):
    binary = tmp_path / "feeds.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["--config", str(binary), "--database", database, "stories"]) == 2
    assert _one_line(capsys.readouterr().err) == \
        f"aggregator: config error: {binary}: not UTF-8 text (invalid start byte at byte 0)"
    assert main(["--config", str(tmp_path), "--database", database, "stories"]) == 2
    assert _one_line(capsys.readouterr().err) == f"aggregator: config error: {tmp_path}: is a folder, not a config file"


@pytest.mark.parametrize("command", [["replay"], ["feeds", "import"]])
def test_a_missing_input_file_is_named_without_errno(elsewhere, tmp_path, command, capsys):
    missing = tmp_path / "missing.txt"
    assert main([*command, str(missing)]) == 1
    assert _one_line(capsys.readouterr().err) == f"aggregator: {missing}: No such file or directory"
    assert main([*command, str(tmp_path)]) == 1
    assert _one_line(capsys.readouterr().err) == f"aggregator: {tmp_path}: is a folder, not a file"


@pytest.mark.parametrize(("url", "problem"), [
    ("http://exa mple.com/feed", "a space in it: write it as %20"),
    ("http://a.example:99999/", "Port out of range 0-65535"),
    ("https://:80/", "no host name"),
    ("http://[::1/", "Invalid IPv6 URL"),
    ("http://" + "a" * 64 + ".example/", "not a valid host name"),
])
def test_a_feed_url_that_cannot_be_fetched_is_a_config_error_with_its_line(tmp_path, database, url, problem, capsys):
    config = tmp_path / "feeds.yaml"
    config.write_text(f"feeds:\n  - name: A\n    url: '{url}'\n")
    assert main(["--config", str(config), "--database", f"sqlite:///{tmp_path}/p.db", "poll"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"aggregator: config error: {config}:3: feeds.0.url: expected an http or https URL")
    assert problem in line
    assert not (tmp_path / "p.db").exists()


def test_an_interrupted_demo_is_not_shown_later_as_the_whole_demo(tmp_path, elsewhere, monkeypatch, capsys):
    import aggregator.demo

    url = f"sqlite:///{tmp_path}/demo.db"
    real_poll, rounds = aggregator.demo.poll_once, []

    def interrupted_in_round_2(engine, config):
        rounds.append(1)
        if len(rounds) == 2:
            raise KeyboardInterrupt
        return real_poll(engine, config)

    monkeypatch.setattr(aggregator.demo, "poll_once", interrupted_in_round_2)
    assert main(["--database", url, "demo"]) == 130
    monkeypatch.undo()
    assert main(["--database", url, "demo"]) == 1
    assert "holds a demo that was interrupted: delete it and run the demo again" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", [["poll"], ["stories"], ["demo"]])
def test_an_empty_database_option_is_a_usage_error_not_the_default(elsewhere, command, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--database", "", *command])
    assert info.value.code == 2
    assert "argument --database: empty: give a database URL" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []
