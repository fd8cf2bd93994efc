"""The commands that read the stories: digest, stories, story, explain, export."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from datetime import UTC, date, datetime

from ..digest import clean_text, iso_time, render_digest
from .common import EXIT_USAGE, CommandError, check_writable, open_aggregator
from .output import emit, output_file, shorten, table_time


def cmd_digest(args: argparse.Namespace) -> int:
    if args.email and args.output:
        print("aggregator: digest --email mails the digest, --output writes it: give one of them", file=sys.stderr)
        return EXIT_USAGE
    check_writable(args.output)
    if args.email:
        return _mail_digest(args)
    with open_aggregator(args) as agg:
        digest = agg.digest(args.date, min_sources=args.min_sources)
        emit(render_digest(digest, args.format), args.output)
    return 0


def _mail_digest(args: argparse.Namespace) -> int:
    from ..web.mail import MailError, send_digest

    with open_aggregator(args, config_required=True) as agg:
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
    with open_aggregator(args) as agg:
        stories = agg.stories(since=args.since, min_sources=args.min_sources, search=args.search, limit=args.limit)
    if args.format == "json":
        from ..digest import digest_to_dict
        from ..query import Digest

        payload = digest_to_dict(Digest(day=date.today(), generated_at=datetime.now(UTC), stories=stories))
        emit(json.dumps(payload["stories"], indent=2, ensure_ascii=False))
        return 0
    if not stories:
        print("No stories match.")
        return 0
    tz = agg.settings.timezone
    print(f"{'ID':>6}  {'SRC':>3}  {'ART':>3}  {'UPDATED':20}  HEADLINE")
    for s in stories:
        print(f"{s.id:>6}  {s.source_count:>3}  {s.article_count:>3}  {table_time(s.last_updated, tz):20}  "
              f"{clean_text(s.headline)[:90]}")
    return 0


def cmd_story(args: argparse.Namespace) -> int:
    with open_aggregator(args) as agg:
        detail = agg.story(args.id)
    if detail is None:
        raise CommandError(f"no story with id {args.id}")
    s = detail.story
    if args.format == "json":
        from dataclasses import asdict

        emit(json.dumps(asdict(detail), default=lambda v: iso_time(v) if isinstance(v, datetime) else str(v),
                         indent=2, ensure_ascii=False))
        return 0
    if s.id != args.id:
        print(f"story {args.id} was merged into story {s.id}")
    print(f"story {s.id}: {clean_text(s.headline)}")
    tz = agg.settings.timezone
    print(f"  {s.source_count} sources, {s.article_count} articles; first seen {table_time(s.first_seen, tz)}, "
          f"last updated {table_time(s.last_updated, tz)}")
    if s.lead:
        print(f"  {clean_text(s.lead)}")
    if detail.merged_from:
        print(f"  merged from stories: {', '.join(map(str, detail.merged_from))}")
    print()
    for a in detail.articles:
        how = a.how_joined
        matched = f"{a.duplicate_signal} {a.duplicate_score or 0:.2f}"
        if a.duplicate_of and a.matched_with:
            how = f"copy of #{a.duplicate_of} ({matched}"
            how += ")" if a.matched_with == a.duplicate_of else f" with #{a.matched_with})"
        elif a.duplicate_of:
            how = f"copy of #{a.duplicate_of}"  # stored first; the match is on the later arrival's line
        elif a.matched_with:
            how = f"original, arrived after its copy #{a.matched_with} ({matched})"
        when = table_time(a.published or a.fetched, tz)
        print(f"  #{a.id:<6} {when:20}  {shorten(clean_text(a.source), 24):24}  {how}")
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
    from ..query import how_joined  # SQLAlchemy: not loaded for --help

    with open_aggregator(args) as agg:
        try:
            result = agg.explain(args.a, args.b)
        except LookupError as exc:
            raise CommandError(_not_articles(agg, exc)) from None
    for label, article in (("A", result.a), ("B", result.b)):
        print(f"{label}: #{article.id} [{clean_text(article.source)}] {clean_text(article.title)[:90]}"
              f"  (story {article.story_id}, {how_joined(article.story_signal, article.story_score)})")
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


def cmd_export(args: argparse.Namespace) -> int:
    from ..query import iter_articles, originals_of_copies, shown_url

    check_writable(args.output)
    with open_aggregator(args) as agg:
        original = originals_of_copies(agg.engine)  # the earliest of each group of copies, as every reader shows
        with output_file(args.output) if args.output else nullcontext(sys.stdout) as out:
            for a in iter_articles(agg.engine):
                row = {
                    "id": a.id, "story": a.story_id, "duplicate_of": original.get(a.id), "source": a.source,
                    "title": a.title, "url": shown_url(a), "published": iso_time(a.published_at),
                    "fetched": iso_time(a.fetched_at), "text": a.text, "text_source": a.text_source,
                    "joined_by": a.story_signal, "score": a.story_score,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0
