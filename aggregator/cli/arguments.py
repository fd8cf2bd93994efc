"""The command line's grammar: commands, options and the checks on their values."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from .. import __version__


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", default=default, help="feeds config file (default ./feeds.yaml)")
    parser.add_argument("--database", default=default, type=_not_blank,
                        help="database URL (default: $AGGREGATOR_DATABASE_URL, "
                        "else the config's 'database', else sqlite:///aggregator.db)")
    parser.add_argument("--log-level", default=default, type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default: the config's log_level)")


def _not_blank(value: str) -> str:
    """A --database given empty (``--database "$UNSET"``) is a mistake, not a wish for the default database."""
    if not value.strip():
        raise argparse.ArgumentTypeError("empty: give a database URL, or leave --database out for the default")
    return value


def _since(value: str) -> datetime | None:
    """An ISO date/time, or a duration back from now such as 6h, 2d (``all``: no bound)."""
    from ..config import parse_since

    try:
        return parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _moment(value: str) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), as a naive UTC time, read as a replay file's
    publication times are."""
    from ..parse import parse_time
    from ..replay import LAST_YEAR

    moment = parse_time(value)
    if moment is None:
        raise argparse.ArgumentTypeError(f"expected an ISO date or time such as 2013-11-27 or 2013-11-27T08:00Z, "
                                         f"got {value[:40]!r}")
    if not 1 < moment.year < LAST_YEAR:
        raise argparse.ArgumentTypeError(f"expected a time from the year 2 to {LAST_YEAR - 1}, got {value[:40]!r}")
    return moment


def _positive_int(value: str) -> int:
    """A whole number of at least 1 (for --limit, --min-sources)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


DATABASE_INT_MAX = 2**31 - 1  # ids and counts are INTEGER columns: 32 bits on PostgreSQL


def _count(value: str) -> int:
    """A --limit or --min-sources: a whole number of at least 1; past what the database holds it means no bound."""
    return min(_positive_int(value), DATABASE_INT_MAX)


def _port(value: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value!r}")
    return number


def _record_id(value: str) -> int:
    """A story or article id: a whole number the database can hold."""
    number = _positive_int(value)
    if number > DATABASE_INT_MAX:
        raise argparse.ArgumentTypeError(f"no such id: {value}")
    return number


def _day(value: str) -> date:
    """YYYY-MM-DD, a day whose bounds exist in every time zone."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None
    if not date(1, 1, 2) <= day <= date(9999, 12, 30):
        raise argparse.ArgumentTypeError(f"expected a date between 0001-01-02 and 9999-12-30, got {value!r}")
    return day


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator", description="Self-hosted news aggregator: one entry per story, with all its sources."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, suppress=True)
        return sub

    command("run", "run the polling daemon until SIGINT/SIGTERM")
    command("worker", "take fetch-and-extract jobs from the queue until SIGINT/SIGTERM (PostgreSQL only)")
    serve = command("serve", "serve the web view, feeds and HTTP API over the database until SIGINT/SIGTERM")
    serve.add_argument("--host", help="address to listen on (default: the config's web.host, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: the config's web.port, 8080)")
    poll = command("poll", "poll the feeds once, then exit")
    poll.add_argument("--feed", action="append", help="only this feed (repeatable)")
    poll.add_argument("--force", action="store_true", help="poll even feeds that are resting or paused")

    demo = command("demo", "run the whole pipeline on a built-in corpus served from 127.0.0.1 (no network)")
    demo.add_argument("--format", choices=["text", "markdown", "html", "json"], default="text")

    digest = command("digest", "print the day's stories, one entry per story")
    digest.add_argument("--date", type=_day, help="YYYY-MM-DD (default today)")
    digest.add_argument("--format", choices=["text", "markdown", "html", "json"], default="text")
    digest.add_argument("--min-sources", type=_count, default=1)
    digest.add_argument("--output", help="write to this file instead of standard output")
    digest.add_argument("--email", action="store_true", help="mail it now as the config's email settings say")

    stories = command("stories", "list story clusters, ranked by distinct sources then recency")
    stories.add_argument("--since", type=_since, help="ISO time, a duration back from now (6h, 2d), or all")
    stories.add_argument("--min-sources", type=_count, default=1)
    stories.add_argument("--search", help='full-text search (words, "phrases", prefix*); ranks by relevance')
    stories.add_argument("--limit", type=_count, default=50)
    stories.add_argument("--format", choices=["table", "json"], default="table")

    story = command("story", "show one story: its articles, sources and how each joined")
    story.add_argument("id", type=_record_id)
    story.add_argument("--format", choices=["text", "json"], default="text")

    explain = command("explain", "why two articles are (or are not) in the same story; takes two article ids "
                      "(`aggregator story ID` lists a story's articles with their ids)")
    explain.add_argument("a", type=_record_id, metavar="ARTICLE_ID", help="an article id (not a story id)")
    explain.add_argument("b", type=_record_id, metavar="OTHER_ARTICLE_ID", help="another article id")

    replay = command("replay", "replay a JSONL file of articles through dedup and clustering, and score it")
    replay.add_argument("file")
    replay.add_argument("--out", help="write {id, story} lines here")
    replay.add_argument("--as-of", type=_moment, metavar="TIME",
                        help="when articles without a publication time arrive, as an ISO date or time (default: "
                        "a second before the file's earliest time, or now if it gives none)")

    feeds = command("feeds", "list feeds with their health; import or export OPML; resume a paused feed")
    feeds.add_argument("action", nargs="?", choices=["list", "import", "export", "resume"], default="list")
    feeds.add_argument("file", nargs="?", help="OPML file to import or export to (default stdout); feed name to resume")
    feeds.add_argument("--format", choices=["table", "json"], help="for list (default table)")

    status = command("status", "show the workers, the job queue, the sequencer and its lag, and the feeds due")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")

    export = command("export", "dump stored articles with their story ids")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--output", help="file to write (default standard output)")
    return parser


