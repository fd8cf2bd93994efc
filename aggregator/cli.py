"""The ``aggregator`` command: a thin layer over :mod:`aggregator.api` and the stage modules."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .digest import clean_text, format_time, iso_time, render_digest

# The config and the database layer (pydantic, SQLAlchemy, numpy) are imported by the commands that use them,
# so that --help, --version and a mistyped command answer at once.
if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("aggregator")

EXIT_USAGE = 2


class CommandError(Exception):
    """A user error with a message for the terminal (exit status 1)."""


# ---- argument parsing -----------------------------------------------------------------------------------


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
    from .config import parse_since

    try:
        return parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


# ---- helpers --------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    from .config import DEFAULT_CONFIG_PATH, load_config

    path = getattr(args, "config", None)
    if path is None and not required and not Path(DEFAULT_CONFIG_PATH).exists():
        return None
    config = load_config(path or DEFAULT_CONFIG_PATH)
    for warning in config.warnings:
        print(f"aggregator: warning: {warning}", file=sys.stderr)
    return config


POLLING_COMMANDS = ("run", "poll", "worker")  # they create the database; the other commands open an existing one


def _aggregator(args: argparse.Namespace, config_required: bool = False):
    """The commands that poll create the database; the others open an existing one."""
    from .api import Aggregator

    config = _database_config(args, config_required)
    polls = getattr(args, "command", None) in POLLING_COMMANDS
    return Aggregator(database=args.database_url, config=config, create=polls)


def _database_config(args: argparse.Namespace, config_required: bool) -> Config | None:
    """The config, checked against the command's options; sets ``args.database_url`` (for error messages)."""
    from .dbfile import resolve_database

    config = _config(args, config_required)
    for name in getattr(args, "feed", None) or []:  # `poll --feed TYPO` fails before the database is touched
        config.feed(name)
    polls = getattr(args, "command", None) in POLLING_COMMANDS
    if polls and config is not None and not any(feed.enabled for feed in config.feeds):
        print(f"aggregator: warning: {config.path} lists no enabled feeds: there is nothing to poll", file=sys.stderr)
    args.database_url = resolve_database(getattr(args, "database", None), config)
    return config


def _reason(exc: Exception, path: str) -> str:
    """``FILE: what went wrong`` for an input file (``FILE: No such file or directory``, not ``[Errno 2] ...``)."""
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a folder, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or path}: {exc.strerror}"
    return str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"


def _check_writable(*paths: str | Path | None) -> None:
    """Refuse an output file that cannot be written, before any work is done (an existing file is untouched)."""
    for path in paths:
        if not path:
            continue
        target = Path(path)
        existed = target.exists()
        try:
            with open(target, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            if target.is_dir():
                raise CommandError(f"cannot write {path}: it is a folder") from None
            if not target.parent.is_dir():
                raise CommandError(f"cannot write {path}: folder {target.parent} does not exist") from None
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        if not existed:
            target.unlink()


def _setup_logging(args: argparse.Namespace, config: Config | None) -> None:
    level = getattr(args, "log_level", None) or (config.settings.log_level if config else "INFO")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
    )
    noisy_loggers = ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _time(value: datetime | None, tz: str | None = None) -> str:
    """A stored (UTC) time for a table: in zone ``tz`` with its abbreviation (see ``digest.format_time``)."""
    if not value:
        return "-"
    return format_time(value, tz) if tz else value.strftime("%Y-%m-%d %H:%M")


def _shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word boundary with an ellipsis when it is longer."""
    if len(text) <= width:
        return text
    short = textwrap.shorten(text, width, placeholder="…")
    return short if short != "…" else text[: width - 1] + "…"  # a first word longer than the column


@contextmanager
def _output_file(path: str) -> Iterator:
    """``path`` opened for writing text, replaced only once everything is written: an error or Ctrl-C midway
    leaves the file as it was, not cut short (a device or pipe such as /dev/stdout, or a file in a folder we may
    not write, is written in place)."""
    given = Path(path)
    target = Path(os.path.realpath(given))  # through a symbolic link: the file it points to is replaced
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        regular = not str(given).startswith(("/dev/", "/proc/")) and (given.is_file() or not given.exists())
        out = open(partial, "x", encoding="utf-8") if regular else None
    except OSError:  # a file we may write in a folder we may not: written in place
        out = None
    if out is None:
        with open(given, "w", encoding="utf-8") as out:
            yield out
        return
    try:
        with out:
            yield out
        if target.exists():
            shutil.copymode(target, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _emit(text: str, output: str | None = None) -> None:
    if output:
        with _output_file(output) as out:
            out.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@contextmanager
def _progress_bar(total: int, description: str, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar on standard error, or None when that is not a terminal
    (piped or redirected output gets no bar and no control characters)."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=f" {unit}", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        yield lambda done, _total: bar.update(done - bar.n)


# ---- commands -------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .scheduler import Daemon, check_digest_folder

    check_digest_folder(_config(args, required=True))  # at start, not at digest_time
    with _aggregator(args, config_required=True) as agg:
        _setup_logging(args, agg.config)
        if agg.engine.url.get_backend_name() == "postgresql":  # workers, a sequencer and a scheduler
            from .workers.runner import run_cluster

            run_cluster(agg.engine, agg.config)
        else:
            Daemon(agg.engine, agg.config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .workers.runner import run_worker

    with _aggregator(args, config_required=True) as agg:
        _setup_logging(args, agg.config)
        run_worker(agg.engine, agg.config)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web.server import WebError, serve_forever

    agg = _aggregator(args)
    _setup_logging(args, agg.config)
    web = agg.settings.web
    try:
        serve_forever(agg, args.host or web.host, web.port if args.port is None else args.port)
    except WebError as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from .quickpoll import open_poll

    config = _database_config(args, config_required=True)
    with open_poll(args.database_url, config) as poll:  # a poll that finds nothing new loads no ORM
        _setup_logging(args, config)
        poll_log = logging.getLogger("aggregator.poll")
        level = poll_log.level
        if logging.getLogger().level > logging.DEBUG:  # each failure gets its line below, not a log line as well
            poll_log.setLevel(logging.ERROR)
        try:
            results = poll(args.feed, args.force)
        finally:
            poll_log.setLevel(level)
    if not results:  # the config's loading has warned that it lists no enabled feed
        return 1
    new = sum(r.new_entries for r in results)  # what was committed, also by a poll that then failed
    failed = [r for r in results if r.status == "error"]
    skipped = [r for r in results if not r.polled and r.status != "error"]
    polled = len(results) - len(failed) - len(skipped)
    problems = f"; {len(failed)} failed, {len(skipped)} skipped" if failed or skipped else ""
    print(f"polled {polled} of {len(results)} feeds: {new} new articles{problems}")
    for r in failed:
        print(f"aggregator: {clean_text(r.feed)}: failed: {clean_text(r.error or 'unknown error')}", file=sys.stderr)
    for r in skipped:
        hint = "--force polls it now" if r.status == "skipped" else f"aggregator feeds resume {shlex.quote(r.feed)}"
        print(f"aggregator: {clean_text(r.feed)}: skipped: {clean_text(r.error or r.status)} ({clean_text(hint)})",
              file=sys.stderr)
    for r in results:
        if r.polled and r.unreadable_entries:
            print(f"aggregator: {clean_text(r.feed)}: polled, but {r.unreadable_entries} of its entries could not be "
                  "read", file=sys.stderr)
    return 1 if failed or skipped else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _setup_logging(args, None) if getattr(args, "log_level", None) else logging.basicConfig(level="WARNING")
    config = _config(args, required=False)  # only for the time zone the digest is shown in
    sys.stdout.write(run_demo(database=getattr(args, "database", None), fmt=args.format,
                              tz=config.settings.timezone if config else "UTC"))
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    if args.email and args.output:
        print("aggregator: digest --email mails the digest, --output writes it: give one of them", file=sys.stderr)
        return EXIT_USAGE
    _check_writable(args.output)
    if args.email:
        return _mail_digest(args)
    with _aggregator(args) as agg:
        digest = agg.digest(args.date, min_sources=args.min_sources)
        _emit(render_digest(digest, args.format), args.output)
    return 0


def _mail_digest(args: argparse.Namespace) -> int:
    from .web.mail import MailError, send_digest

    with _aggregator(args, config_required=True) as agg:
        settings = agg.settings
        if settings.email is None:
            raise CommandError(f"{agg.config.path}: no 'email' settings: add settings.email (smtp_host, from, to)")
        digest = agg.digest(args.date, min_sources=args.min_sources)
    try:
        send_digest(digest, settings.email, settings.timezone)
    except MailError as exc:
        raise CommandError(str(exc)) from None
    print(f"mailed the digest of {digest.day.isoformat()} ({len(digest.stories)} stories) to "
          f"{', '.join(settings.email.to)}")
    return 0


def cmd_stories(args: argparse.Namespace) -> int:
    with _aggregator(args) as agg:
        stories = agg.stories(since=args.since, min_sources=args.min_sources, search=args.search, limit=args.limit)
    if args.format == "json":
        from .digest import digest_to_dict
        from .query import Digest

        payload = digest_to_dict(Digest(day=date.today(), generated_at=datetime.now(UTC), stories=stories))
        _emit(json.dumps(payload["stories"], indent=2, ensure_ascii=False))
        return 0
    if not stories:
        print("No stories match.")
        return 0
    tz = agg.settings.timezone
    print(f"{'ID':>6}  {'SRC':>3}  {'ART':>3}  {'UPDATED':20}  HEADLINE")
    for s in stories:
        print(f"{s.id:>6}  {s.source_count:>3}  {s.article_count:>3}  {_time(s.last_updated, tz):20}  "
              f"{clean_text(s.headline)[:90]}")
    return 0


def cmd_story(args: argparse.Namespace) -> int:
    with _aggregator(args) as agg:
        detail = agg.story(args.id)
    if detail is None:
        raise CommandError(f"no story with id {args.id}")
    s = detail.story
    if args.format == "json":
        from dataclasses import asdict

        _emit(json.dumps(asdict(detail), default=lambda v: iso_time(v) if isinstance(v, datetime) else str(v),
                         indent=2, ensure_ascii=False))
        return 0
    if s.id != args.id:
        print(f"story {args.id} was merged into story {s.id}")
    print(f"story {s.id}: {clean_text(s.headline)}")
    tz = agg.settings.timezone
    print(f"  {s.source_count} sources, {s.article_count} articles; first seen {_time(s.first_seen, tz)}, "
          f"last updated {_time(s.last_updated, tz)}")
    if s.lead:
        print(f"  {clean_text(s.lead)}")
    if detail.merged_from:
        print(f"  merged from stories: {', '.join(map(str, detail.merged_from))}")
    print()
    for a in detail.articles:
        how = f"{a.joined_by} {a.score:.2f}"
        matched = f"{a.duplicate_signal} {a.duplicate_score or 0:.2f}"
        if a.duplicate_of and a.matched_with:
            how = f"copy of #{a.duplicate_of} ({matched}"
            how += ")" if a.matched_with == a.duplicate_of else f" with #{a.matched_with})"
        elif a.duplicate_of:
            how = f"copy of #{a.duplicate_of}"  # stored first; the match is on the later arrival's line
        elif a.matched_with:
            how = f"original, arrived after its copy #{a.matched_with} ({matched})"
        print(f"  #{a.id:<6} {_time(a.published or a.fetched, tz):20}  {_shorten(clean_text(a.source), 24):24}  {how}")
        print(f"          {clean_text(a.title)[:100]}")
        print(f"          {clean_text(a.url or '-')}  [text from {a.text_source}]")
    return 0


def _not_articles(agg, exc: LookupError) -> str:
    """The error for ids that name no article, saying when one of them is a story's id instead."""
    stories = [i for i in getattr(exc, "ids", []) if agg.story(i) is not None]
    if stories:
        return (f"{exc}: explain takes article ids, and {stories[0]} is a story id "
                f"(`aggregator story {stories[0]}` lists its articles with their ids)")
    return f"{exc}: explain takes article ids (`aggregator story ID` lists a story's articles with their ids)"


def cmd_explain(args: argparse.Namespace) -> int:
    with _aggregator(args) as agg:
        try:
            result = agg.explain(args.a, args.b)
        except LookupError as exc:
            raise CommandError(_not_articles(agg, exc)) from None
    for label, article in (("A", result.a), ("B", result.b)):
        print(f"{label}: #{article.id} [{clean_text(article.source)}] {clean_text(article.title)[:90]}"
              f"  (story {article.story_id}, joined by {article.story_signal} {article.story_score:.2f})")
    verdict = "the same article" if result.same_article else ("the same story" if result.same_story else
                                                               "different stories")
    print(f"stored as: {verdict}")
    print()
    rows = [("SIGNAL", "VALUE", "THRESHOLD", "VERDICT")]
    rows += [(s.label, s.value_text, s.threshold_text, s.verdict) for s in result.signals]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"  {row[0]:{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:{widths[2]}}  {row[3]}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import ReplayError, read_rows, replay, summary_lines, write_predictions

    _check_writable(args.out)
    config = _config(args, required=False)
    window = config.settings.story_window if config else 3 * 86400
    try:
        rows = read_rows(args.file)
        with _progress_bar(len(rows), "replaying", "articles") as progress:
            report = replay(rows, database=getattr(args, "database", None), window_seconds=window, progress=progress,
                            semantic=bool(config and config.settings.semantic_clustering))
    except (OSError, ReplayError) as exc:
        raise CommandError(_reason(exc, args.file)) from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{args.file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if args.out:
        write_predictions(report, args.out)
    for line in summary_lines(report):
        print(line)
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    from .config import DEFAULT_CONFIG_PATH, load_config
    from .opml import OpmlError, export_opml, merge_feeds_into_yaml, read_opml

    if args.format and args.action != "list":  # export and import speak OPML
        print(f"aggregator: --format is for feeds list, not feeds {args.action}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "list" and args.file:
        print(f"aggregator: feeds list takes no file or name, got {args.file!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "export":
        config = _config(args, required=True)
        _check_writable(args.file)
        _emit(export_opml(config.feeds), args.file)
        return 0
    if args.action == "resume":
        from .pipeline import resume_feed

        if not args.file:
            raise CommandError("feeds resume needs a feed name")
        with _aggregator(args) as agg:
            if not resume_feed(agg.engine, args.file):
                raise CommandError(f"no feed named {args.file!r} has been polled")
        print(f"resumed {args.file}: it is polled again at its next turn")
        return 0
    if args.action == "import":
        if not args.file:
            raise CommandError("feeds import needs an OPML file")
        path = Path(getattr(args, "config", None) or DEFAULT_CONFIG_PATH)
        if path.exists():
            load_config(path)  # a config that does not load is not merged into
        _check_writable(path)
        try:
            found = read_opml(Path(args.file).read_bytes())
        except (OSError, OpmlError) as exc:
            raise CommandError(_reason(exc, args.file)) from None
        feeds, skipped = found.feeds, found.skipped_summary()
        if not feeds:
            raise CommandError(f"{args.file}: no feeds to import" + (f" ({skipped})" if skipped else ""))
        current = path.read_text(encoding="utf-8") if path.exists() else "feeds:\n"
        updated, added = merge_feeds_into_yaml(current, feeds)
        _emit(updated, str(path))  # replaced whole, never left half-written
        notes = "".join(f"; {note}" for note in (skipped, found.ignored_summary()) if note)
        print(f"imported {added} new feeds into {path} ({len(feeds) - added} already there){notes}")
        return 0
    with _aggregator(args) as agg:
        health = agg.feeds()
        configured = {f.name: f for f in agg.config.feeds} if agg.config else {}
    if args.format == "json":
        from dataclasses import asdict

        _emit(json.dumps([asdict(h) for h in health], default=iso_time, indent=2))
        return 0
    known = {h.name for h in health}
    now = datetime.now(UTC).replace(tzinfo=None)  # stored times are naive UTC
    note_width = max(40, shutil.get_terminal_size((120, 24)).columns - 30)
    tz = agg.settings.timezone
    print(f"{'FEED':28} {'STATE':8} {'LAST FETCH':20} {'HTTP':>4} {'NEW':>4} {'ERR':>3} {'ARTICLES':>8}")
    for h in health:
        resting = h.resting_until is not None and h.resting_until > now
        state = h.state(enabled=h.name not in configured or configured[h.name].enabled, now=now)
        print(f"{_shorten(clean_text(h.name), 28):28} {state:8} {_time(h.last_fetched, tz):20} "
              f"{h.last_status or '-':>4} {h.new_entries:>4} {h.consecutive_errors:>3} {h.articles:>8}")
        if h.disabled:
            note = h.disabled
        elif h.last_error:
            note = (f"resting until {_time(h.resting_until, tz)}; " if resting else "") + f"last error: {h.last_error}"
        else:
            note = ""
        for line in textwrap.wrap(clean_text(note), note_width, max_lines=4, placeholder=" …"):
            print(f"{'':28} {line}")
    for name in configured:
        if name not in known:
            print(f"{_shorten(clean_text(name), 28):28} {'new':8} {'never':20}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .workers.status import cluster_status, render_status

    with _aggregator(args) as agg:
        status = cluster_status(agg.engine, agg.config)
    if args.format == "json":
        _emit(json.dumps(status.as_dict(), default=iso_time, indent=2))
    else:
        print(render_status(status, agg.settings.timezone))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .query import iter_articles, originals_of_copies, shown_url

    _check_writable(args.output)
    with _aggregator(args) as agg:
        original = originals_of_copies(agg.engine)  # the earliest of each group of copies, as every reader shows
        with _output_file(args.output) if args.output else nullcontext(sys.stdout) as out:
            for a in iter_articles(agg.engine):
                row = {
                    "id": a.id, "story": a.story_id, "duplicate_of": original.get(a.id), "source": a.source,
                    "title": a.title, "url": shown_url(a), "published": iso_time(a.published_at),
                    "fetched": iso_time(a.fetched_at), "text": a.text, "text_source": a.text_source,
                    "joined_by": a.story_signal, "score": a.story_score,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


COMMANDS = {
    "run": cmd_run, "poll": cmd_poll, "demo": cmd_demo, "digest": cmd_digest, "stories": cmd_stories,
    "story": cmd_story, "explain": cmd_explain, "replay": cmd_replay, "feeds": cmd_feeds, "export": cmd_export,
    "serve": cmd_serve, "worker": cmd_worker, "status": cmd_status,
}


def _database_error(args: argparse.Namespace, exc: Exception) -> str | None:
    """One line for an error the database raised (a damaged file, a lost server), None for anything else."""
    from sqlalchemy.exc import DBAPIError

    from .store import describe_database_error

    if not isinstance(exc, DBAPIError):
        return None
    return describe_database_error(getattr(args, "database_url", None), exc, doing="read")


def main(argv: list[str] | None = None) -> int:
    args = argparse.Namespace()
    try:
        # Ctrl-C may come while the modules load: quiet, whatever was loading.
        args = build_parser().parse_args(argv)
        from .config import ConfigError
        from .errors import SearchError, StoreError
    except KeyboardInterrupt:
        return 130
    try:
        # ... or while the engine reloads or a command runs.
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"aggregator: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, CommandError) as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 1
    except SearchError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        message = _database_error(args, exc)
        if message is None:
            raise
        print(f"aggregator: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
