#!/usr/bin/env python3
"""Benchmark the web view: server time of the river, a story, the feeds and full-text search, with N articles
stored.

usage: python scripts/bench_web.py [--articles 100000] [--database sqlite:///FILE] [--repeat 50]

The database is filled with synthetic news in bulk (no clustering: stories of 1 to 8 articles from 40
outlets over 30 days, titles and 80-word texts drawn from a Zipf vocabulary around each story's topic words),
then every request is served in-process through the ASGI app (no network) and timed; p50 and p95 in ms.
A --database that already holds articles is used as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session, func, select  # noqa: E402

from aggregator.models import Article, Feed, Story  # noqa: E402
from aggregator.store import open_database  # noqa: E402

OUTLETS = 40
DAYS = 30
BATCH = 5000


def _vocabulary(rng: random.Random, size: int = 20000) -> list[str]:
    syllables = ["ka", "lo", "mer", "tan", "vi", "ros", "el", "du", "pra", "sen", "or", "bal", "ti", "nu", "gar",
                 "fel", "os", "quin", "ra", "zem"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def fill(engine, articles: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = _vocabulary(rng)
    cumulative, total = [], 0.0
    for rank in range(len(words)):
        total += 1 / (rank + 1)
        cumulative.append(total)
    now = datetime.now(UTC).replace(tzinfo=None)
    with Session(engine) as session:
        feeds = [Feed(name=f"Outlet {i:02d}", url=f"https://outlet{i}.example/feed.xml", last_status=200,
                      last_fetched_at=now, last_success_at=now) for i in range(OUTLETS)]
        session.add_all(feeds)
        session.commit()
        feed_ids = [f.id for f in feeds]
    article_rows, story_rows = [], []
    story_id = article_id = 0
    while article_id < articles:
        story_id += 1
        size = min(articles - article_id, rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 8]))
        topic = rng.sample(words[200:], 4)
        start = now - timedelta(days=DAYS) + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        outlets = set()
        first = article_id + 1
        last_time = start
        for n in range(size):
            article_id += 1
            outlet = rng.randrange(OUTLETS)
            outlets.add(outlet)
            when = start + timedelta(minutes=rng.uniform(0, 600) * (n > 0))
            last_time = max(last_time, when)
            title = " ".join(topic[:3] + rng.choices(words, cum_weights=cumulative, k=6)).capitalize()
            text = " ".join(rng.choices(words, cum_weights=cumulative, k=60) + topic * 5)
            article_rows.append({
                "id": article_id, "feed_id": feed_ids[outlet], "source_key": f"Outlet {outlet:02d}",
                "external_id": f"a{article_id}", "source": f"Outlet {outlet:02d}",
                "url": f"https://outlet{outlet}.example/{article_id}", "title": title, "summary": text[:200],
                "text": text, "text_source": "feed", "published_at": when, "fetched_at": when,
                "content_hash": hashlib.sha1(text.encode()).hexdigest(), "story_id": story_id,
                "story_signal": "new-story" if n == 0 else "story-similarity", "story_score": 0.0 if n == 0 else 0.4,
            })
        story_rows.append({"id": story_id, "title": article_rows[-size]["title"], "representative_id": first,
                           "first_seen": start, "last_updated": last_time, "article_count": size,
                           "source_count": len(outlets), "closed": last_time < now - timedelta(days=3)})
        if len(article_rows) >= BATCH:
            _flush(engine, story_rows, article_rows)
    _flush(engine, story_rows, article_rows)


def _flush(engine, stories: list[dict], articles: list[dict]) -> None:
    with engine.begin() as connection:
        if stories:
            connection.execute(insert(Story), stories)
        if articles:
            connection.execute(insert(Article), articles)
    stories.clear()
    articles.clear()


def _timings(client, url: str, repeat: int) -> dict:
    client.get(url)  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:200])
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--database", help="SQLite or PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from aggregator.api import Aggregator
    from aggregator.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="aggregator-bench-web-") as tmp:
        database = args.database or f"sqlite:///{tmp}/bench.db"
        engine = open_database(database)
        with Session(engine) as session:
            stored = session.exec(select(func.count()).select_from(Article)).one()
        if not stored:
            started = time.perf_counter()
            fill(engine, args.articles)
            print(f"filled {args.articles} articles in {time.perf_counter() - started:.1f} s", flush=True)
        with Session(engine) as session:
            stored = session.exec(select(func.count()).select_from(Article)).one()
            story = session.exec(select(Story.id).order_by(Story.article_count.desc())).first()
            word = session.exec(select(Article.title).where(Article.id == min(4242, stored))).one().split()[1]
        engine.dispose()

        agg = Aggregator(database=database)
        client = TestClient(create_app(agg))
        requests = {
            "river (last 24 h)": "/",
            "river (all, page 1)": "/?since=all",
            "river (all, page 100)": "/?since=all&page=100",
            "river (3+ sources, 7 d)": "/?since=7d&min_sources=3",
            "story page": f"/stories/{story}",
            "stories.atom": "/stories.atom",
            "api/stories": "/api/stories?since=all&limit=100",
            "search: one topic word": f"/search?q={word}",
            "search: common word": "/search?q=kaka",
            "search: two words": f"/search?q={word}+kaka",
            "search: prefix": f"/search?q={word[:4]}*",
            "search: phrase": f"/search?q=%22{word}%22",
            "api/search": f"/api/search?q={word}",
        }
        results = {}
        for name, url in requests.items():
            results[name] = _timings(client, url, args.repeat)
            figures = results[name]
            print(f"{name:28} p50 {figures['p50_ms']:7.1f} ms   p95 {figures['p95_ms']:7.1f} ms", flush=True)
        agg.close()
    print("== web: " + json.dumps({"articles": stored, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
