#!/usr/bin/env python3
"""Print the stories most outlets covered recently, using the same API as the `aggregator` command.

usage: python scripts/top_stories.py [--database URL] [--hours 24] [--min-sources 2]
"""

import argparse
import sys
from datetime import UTC, datetime, timedelta

from aggregator import Aggregator
from aggregator.store import StoreError


def _hours(value: str) -> float:
    """A number of hours back from now, more than 0 and short of the year 1."""
    try:
        hours = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {value!r}") from None
    if not 0 < hours <= 10_000_000:
        raise argparse.ArgumentTypeError(f"expected more than 0 and at most 10000000 hours, got {value!r}")
    return hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="database URL (default: $AGGREGATOR_DATABASE_URL or ./feeds.yaml's)")
    parser.add_argument("--hours", type=_hours, default=24)
    parser.add_argument("--min-sources", type=int, default=2)
    args = parser.parse_args()

    since = datetime.now(UTC) - timedelta(hours=args.hours)
    try:
        agg = Aggregator(database=args.database, create=False)  # reading: a mistyped name is not a new database
    except StoreError as exc:
        sys.exit(f"top_stories: {exc}")
    with agg:
        stories = agg.stories(since=since, min_sources=args.min_sources, limit=20)
        if not stories:
            print(f"No story with {args.min_sources}+ sources in the last {args.hours:g} hours.")
        for story in stories:
            outlets = sorted({s.source for s in story.sources} | {c.source for s in story.sources for c in s.copies})
            print(f"[{story.source_count} sources] {story.headline}")
            print(f"    {', '.join(outlets)}")
            detail = agg.story(story.id)
            copies = sum(1 for a in detail.articles if a.duplicate_of)
            print(f"    {story.article_count} articles, {copies} of them copies of another; story id {story.id}")


if __name__ == "__main__":
    main()
