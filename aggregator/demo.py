"""Demo corpus: load the made-up news corpus and render it as feeds and article pages.

``aggregator demo`` serves what :func:`render_site` returns from a local HTTP server on 127.0.0.1, one
polling round at a time, so the whole pipeline (fetch, extract, fold duplicates, cluster stories) can be
watched working on realistic input without touching the internet.

The corpus (``demo_corpus/corpus.json``) has six fictional outlets publishing in three rounds over 18 hours
of 2026-11-24: a wire service, two newspapers reprinting its copy, a broadcaster, a regional paper and a
tech/business site. Every article carries its true ``story`` label so tests can check the clustering.
:func:`run_demo` moves it in time (:func:`stamped`) so it reads as the news of the hours before it runs.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import yaml
from sqlmodel import Session, select

from .config import parse_config
from .digest import format_time, render_digest
from .localsite import LocalSite
from .models import Feed, Meta
from .pipeline import poll_once
from .query import Digest, list_stories
from .store import StoreError, open_database, session_scope, shown_url

CORPUS_PATH = Path(__file__).parent / "demo_corpus" / "corpus.json"
STAMP_KEY = "demo_stamped_at"  # in the Meta table: when the demo was polled into this database
UNFINISHED_KEY = "demo_unfinished"  # present while the demo's rounds are being polled (Ctrl-C leaves it)
STAMP_MARGIN = timedelta(minutes=5)  # the newest article was published this long before the demo ran

FORMATS = ("rss", "atom", "json")
_FEED_FILES = {"rss": "feed.xml", "atom": "feed.atom", "json": "feed.json"}
_CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
HTML_TYPE = "text/html; charset=utf-8"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass
class DemoOutlet:
    slug: str
    name: str
    format: str  # "rss", "atom" or "json"
    full_text: bool  # False: the feed carries the whole body and article pages are not fetched
    site: str  # one-line description of the outlet
    tags: list[str] = field(default_factory=list)
    guid_permalink: bool = True  # RSS only: False gives opaque guids with isPermaLink="false"
    link_params: str = ""  # query string appended to item links in the feed, e.g. utm_* tracking


@dataclass
class DemoArticle:
    outlet: str
    slug: str
    round: int  # the polling round in which the item first appears in its outlet's feed
    published: datetime  # aware, UTC
    title: str
    author: str
    summary: str
    body: list[str]
    story: str  # true story label


@dataclass
class DemoCorpus:
    outlets: list[DemoOutlet]
    articles: list[DemoArticle]
    rounds: int

    def outlet(self, slug: str) -> DemoOutlet:
        for outlet in self.outlets:
            if outlet.slug == slug:
                return outlet
        raise KeyError(slug)

    def visible(self, outlet: DemoOutlet | str, round: int) -> list[DemoArticle]:
        """The outlet's items shown in ``round``, newest first."""
        slug = outlet if isinstance(outlet, str) else outlet.slug
        items = [a for a in self.articles if a.outlet == slug and a.round <= round]
        return sorted(items, key=lambda a: (a.published, a.slug), reverse=True)


# ---------------------------------------------------------------------------------------------- loading


def _parse_time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: published: expected an ISO 8601 time, got {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{where}: published: time {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def load_corpus(path: Path = CORPUS_PATH) -> DemoCorpus:
    """Read and check the corpus; inconsistencies raise ``ValueError`` naming the offending entry."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    outlets: list[DemoOutlet] = []
    for i, raw in enumerate(data.get("outlets") or []):
        where = f"outlets[{i}]"
        outlet = DemoOutlet(
            slug=raw["slug"],
            name=raw["name"],
            format=raw["format"],
            full_text=bool(raw.get("full_text", True)),
            site=raw.get("site", raw["name"]),
            tags=list(raw.get("tags", [])),
            guid_permalink=bool(raw.get("guid_permalink", True)),
            link_params=raw.get("link_params", ""),
        )
        if not _SLUG.match(outlet.slug):
            raise ValueError(f"{where}: slug {outlet.slug!r} is not a lowercase-hyphenated slug")
        if outlet.format not in FORMATS:
            raise ValueError(f"{where}: format {outlet.format!r} is not one of {', '.join(FORMATS)}")
        if any(o.slug == outlet.slug for o in outlets):
            raise ValueError(f"{where}: duplicate outlet slug {outlet.slug!r}")
        outlets.append(outlet)
    if not outlets:
        raise ValueError(f"{path}: no outlets")
    known = {o.slug for o in outlets}

    articles: list[DemoArticle] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(data.get("articles") or []):
        where = f"articles[{i}] ({raw.get('outlet')}/{raw.get('slug')})"
        body = raw.get("body")
        if not isinstance(body, list) or not body or not all(isinstance(p, str) and p.strip() for p in body):
            raise ValueError(f"{where}: body must be a non-empty list of paragraphs")
        article = DemoArticle(
            outlet=raw["outlet"],
            slug=raw["slug"],
            round=raw["round"],
            published=_parse_time(raw["published"], where),
            title=raw["title"],
            author=raw["author"],
            summary=raw["summary"],
            body=list(body),
            story=raw["story"],
        )
        if article.outlet not in known:
            raise ValueError(f"{where}: unknown outlet {article.outlet!r}")
        if not _SLUG.match(article.slug):
            raise ValueError(f"{where}: slug {article.slug!r} is not a lowercase-hyphenated slug")
        if (article.outlet, article.slug) in seen:
            raise ValueError(f"{where}: duplicate slug {article.slug!r} for outlet {article.outlet!r}")
        if not isinstance(article.round, int) or isinstance(article.round, bool) or article.round < 1:
            raise ValueError(f"{where}: round must be a positive integer, got {article.round!r}")
        if not article.story:
            raise ValueError(f"{where}: story label is empty")
        seen.add((article.outlet, article.slug))
        articles.append(article)
    if not articles:
        raise ValueError(f"{path}: no articles")
    rounds = max(a.round for a in articles)
    missing = sorted(set(range(1, rounds + 1)) - {a.round for a in articles})
    if missing:
        raise ValueError(f"{path}: no article appears in round(s) {', '.join(map(str, missing))}")
    return DemoCorpus(outlets=outlets, articles=articles, rounds=rounds)


# ---------------------------------------------------------------------------------------------- paths


def _slug_of(outlet: DemoOutlet | str) -> str:
    return outlet if isinstance(outlet, str) else outlet.slug


def feed_path(outlet: DemoOutlet) -> str:
    """``/continental-press/feed.xml`` (``feed.atom`` for Atom, ``feed.json`` for JSON Feed)."""
    return f"/{outlet.slug}/{_FEED_FILES[outlet.format]}"


def article_path(article: DemoArticle) -> str:
    """``/continental-press/2026/11/24/trump-putin-budapest-summit.html``."""
    return f"/{article.outlet}/{article.published:%Y/%m/%d}/{article.slug}.html"


def _home_path(outlet: DemoOutlet | str) -> str:
    return f"/{_slug_of(outlet)}/"


def _with_params(url: str, params: str) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{params}"


# ---------------------------------------------------------------------------------------------- feeds


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body_html(article: DemoArticle) -> str:
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in article.body)


def _feed_updated(items: list[DemoArticle]) -> datetime:
    if items:
        return items[0].published
    return datetime(2026, 11, 24, tzinfo=UTC)


def _render_rss(outlet: DemoOutlet, items: list[DemoArticle], base: str) -> str:
    self_url = base + feed_path(outlet)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"  <title>{escape(outlet.name)}</title>",
        f"  <link>{escape(base + _home_path(outlet))}</link>",
        f"  <description>{escape(outlet.site)}</description>",
        "  <language>en</language>",
        f"  <lastBuildDate>{format_datetime(_feed_updated(items), usegmt=True)}</lastBuildDate>",
        f"  <atom:link href={quoteattr(self_url)} rel=\"self\" type=\"application/rss+xml\"/>",
        "  <ttl>15</ttl>",
    ]
    for article in items:
        url = base + article_path(article)
        if outlet.guid_permalink:
            guid = f"  <guid isPermaLink=\"true\">{escape(url)}</guid>"
        else:
            opaque = f"{outlet.slug}:{article.published:%Y%m%d%H%M}:{article.slug}"
            guid = f"  <guid isPermaLink=\"false\">{escape(opaque)}</guid>"
        lines += [
            "  <item>",
            f"    <title>{escape(article.title)}</title>",
            f"    <link>{escape(_with_params(url, outlet.link_params))}</link>",
            "  " + guid,
            f"    <pubDate>{format_datetime(article.published, usegmt=True)}</pubDate>",
            f"    <dc:creator>{escape(article.author)}</dc:creator>",
            f"    <description>{escape(article.summary)}</description>",
        ]
        if not outlet.full_text:
            lines.append(f"    <content:encoded>{escape(_body_html(article))}</content:encoded>")
        lines.append("  </item>")
    lines += ["</channel>", "</rss>", ""]
    return "\n".join(lines)


def _render_atom(outlet: DemoOutlet, items: list[DemoArticle], base: str) -> str:
    self_url = base + feed_path(outlet)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">',
        f"  <title>{escape(outlet.name)}</title>",
        f"  <subtitle>{escape(outlet.site)}</subtitle>",
        f"  <id>{escape(f'tag:{outlet.slug}.example,2026:feed')}</id>",
        f"  <updated>{_iso(_feed_updated(items))}</updated>",
        f"  <link rel=\"self\" type=\"application/atom+xml\" href={quoteattr(self_url)}/>",
        f"  <link rel=\"alternate\" type=\"text/html\" href={quoteattr(base + _home_path(outlet))}/>",
        f"  <author><name>{escape(outlet.name)}</name></author>",
    ]
    for article in items:
        url = base + article_path(article)
        entry_id = f"tag:{outlet.slug}.example,{article.published:%Y-%m-%d}:{article.slug}"
        lines += [
            "  <entry>",
            f"    <id>{escape(entry_id)}</id>",
            f"    <title type=\"text\">{escape(article.title)}</title>",
            f"    <link rel=\"alternate\" type=\"text/html\" href={quoteattr(_with_params(url, outlet.link_params))}/>",
            f"    <published>{_iso(article.published)}</published>",
            f"    <updated>{_iso(article.published)}</updated>",
            f"    <author><name>{escape(article.author)}</name></author>",
            f"    <summary type=\"text\">{escape(article.summary)}</summary>",
        ]
        if not outlet.full_text:
            lines.append(f"    <content type=\"html\">{escape(_body_html(article))}</content>")
        lines.append("  </entry>")
    lines += ["</feed>", ""]
    return "\n".join(lines)


def _render_json_feed(outlet: DemoOutlet, items: list[DemoArticle], base: str) -> str:
    feed: dict = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": outlet.name,
        "home_page_url": base + _home_path(outlet),
        "feed_url": base + feed_path(outlet),
        "description": outlet.site,
        "language": "en-GB",
        "items": [],
    }
    for article in items:
        url = base + article_path(article)
        item = {
            "id": url,
            "url": _with_params(url, outlet.link_params),
            "title": article.title,
            "summary": article.summary,
            "date_published": _iso(article.published),
            "authors": [{"name": article.author}],
        }
        # JSON Feed 1.1 requires content_html or content_text; the full body only when pages are not fetched.
        if outlet.full_text:
            item["content_text"] = article.summary
        else:
            item["content_html"] = _body_html(article)
        feed["items"].append(item)
    return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"


_FEED_RENDERERS = {"rss": _render_rss, "atom": _render_atom, "json": _render_json_feed}


# ---------------------------------------------------------------------------------------------- pages

_SECTIONS = ("World", "Business", "Technology", "Sport", "Weather", "Opinion")
_EVERGREEN = (
    ("Weather: the week ahead", "weather/the-week-ahead"),
    ("Letters to the editor", "opinion/letters"),
    ("Puzzles and crosswords", "puzzles"),
    ("Listen: the daily briefing podcast", "podcasts/daily-briefing"),
)
_STYLE = (
    "body{font-family:Georgia,serif;margin:0;color:#222}"
    ".site-header,.site-footer{background:#1d2b3a;color:#fff;padding:.8em 1.5em}"
    ".site-header a,.site-footer a{color:#fff;margin-right:1em}"
    ".cookie-banner{position:fixed;bottom:0;left:0;right:0;background:#f4f1e8;padding:1em;border-top:1px solid #ccc}"
    "main{display:flex;gap:2em;max-width:64em;margin:2em auto;padding:0 1em}"
    "article{flex:3}aside{flex:1;font-size:.9em}.byline{color:#666}"
)


def _related(corpus: DemoCorpus, article: DemoArticle, base: str) -> list[tuple[str, str]]:
    """Three or four links for the "Related stories" box, the same for every round the page is served in."""
    others = [a for a in corpus.visible(article.outlet, article.round) if a is not article][:4]
    links = [(a.title, base + article_path(a)) for a in others]
    for title, section in _EVERGREEN:
        if len(links) >= 3:
            break
        links.append((title, f"{base}/{article.outlet}/{section}/"))
    return links


def _render_article(corpus: DemoCorpus, outlet: DemoOutlet, article: DemoArticle, base: str) -> str:
    e = html.escape
    url = base + article_path(article)
    home = base + _home_path(outlet)
    stamp = _iso(article.published)
    shown = f"{article.published.day} {article.published:%B %Y, %H:%M} UTC"
    nav = "\n".join(
        f'        <li><a href="{e(home + s.lower() + "/")}">{e(s)}</a></li>' for s in _SECTIONS
    )
    related = "\n".join(
        f'        <li><a href="{e(link)}">{e(title)}</a></li>' for title, link in _related(corpus, article, base)
    )
    paragraphs = "\n".join(f"        <p>{e(p, quote=False)}</p>" for p in article.body)
    feed_type = _CONTENT_TYPES[outlet.format].split(";")[0]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{e(article.title)} | {e(outlet.name)}</title>
  <meta name="description" content="{e(article.summary)}">
  <meta name="author" content="{e(article.author)}">
  <link rel="canonical" href="{e(url)}">
  <meta property="og:type" content="article">
  <meta property="og:site_name" content="{e(outlet.name)}">
  <meta property="og:title" content="{e(article.title)}">
  <meta property="og:description" content="{e(article.summary)}">
  <meta property="og:url" content="{e(url)}">
  <meta property="article:published_time" content="{stamp}">
  <meta property="article:author" content="{e(article.author)}">
  <link rel="alternate" type="{feed_type}" title="{e(outlet.name)}" href="{e(base + feed_path(outlet))}">
  <style>{_STYLE}</style>
</head>
<body>
  <div id="cookie-banner" class="cookie-banner" role="dialog" aria-label="Cookie consent">
    <p>We use cookies and similar technologies to remember your preferences, measure how our journalism is
    read and show you relevant advertising. You can change your choices at any time under Cookie settings.</p>
    <button type="button">Accept all cookies</button>
    <button type="button">Manage preferences</button>
  </div>
  <header class="site-header">
    <a class="logo" href="{e(home)}">{e(outlet.name)}</a>
    <nav aria-label="Sections">
      <ul>
        <li><a href="{e(home)}">Home</a></li>
{nav}
      </ul>
    </nav>
    <form class="search" action="{e(home)}search" method="get">
      <input type="search" name="q" placeholder="Search {e(outlet.name)}">
    </form>
  </header>
  <main>
    <article>
      <h1>{e(article.title)}</h1>
      <div class="byline">By <span class="author">{e(article.author)}</span>
        <time datetime="{stamp}">{shown}</time></div>
      <div class="article-body">
{paragraphs}
      </div>
      <div class="share">Share this story: <a href="#">Email</a> <a href="#">Facebook</a> <a href="#">X</a></div>
    </article>
    <aside class="related" aria-label="Related stories">
      <h2>Related stories</h2>
      <ul>
{related}
      </ul>
    </aside>
  </main>
  <section class="newsletter">
    <h2>Get the morning briefing</h2>
    <p>The day's most important stories from {e(outlet.name)}, in your inbox before breakfast.</p>
    <form action="{e(home)}newsletter" method="post"><input type="email" name="email"><button>Sign up</button></form>
  </section>
  <footer class="site-footer">
    <nav aria-label="Footer">
      <a href="{e(home)}about/">About us</a> <a href="{e(home)}contact/">Contact</a>
      <a href="{e(home)}terms/">Terms of use</a> <a href="{e(home)}privacy/">Privacy policy</a>
      <a href="{e(home)}cookies/">Cookie settings</a>
    </nav>
    <p>&copy; 2026 {e(outlet.name)}. All rights reserved. {e(outlet.site)}.</p>
  </footer>
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------- site


def render_site(corpus: DemoCorpus, base_url: str, round: int) -> dict[str, tuple[bytes, str]]:
    """Every outlet feed and every article page visible in ``round``: path -> (body, content type).

    Feeds hold the items with ``article.round <= round``, newest first. Paths carry no query string; links
    in a feed may (``link_params``), so a server should look pages up by path alone.
    """
    base = base_url.rstrip("/")
    site: dict[str, tuple[bytes, str]] = {}
    for outlet in corpus.outlets:
        items = corpus.visible(outlet, round)
        text = _FEED_RENDERERS[outlet.format](outlet, items, base)
        site[feed_path(outlet)] = (text.encode("utf-8"), _CONTENT_TYPES[outlet.format])
        for article in items:
            page = _render_article(corpus, outlet, article, base)
            site[article_path(article)] = (page.encode("utf-8"), HTML_TYPE)
    return site


def demo_feeds_yaml(corpus: DemoCorpus, base_url: str) -> str:
    """A ``feeds.yaml`` for the demo: one feed per outlet, polled every 15 minutes.

    ``allowed_networks`` lets in 127.0.0.1 alone, where the demo server listens.
    """
    base = base_url.rstrip("/")
    document = {
        "settings": {"allowed_networks": ["127.0.0.1/32"]},
        "feeds": [
            {
                "name": outlet.name,
                "url": base + feed_path(outlet),
                "interval": "15m",
                "tags": list(outlet.tags),
                "full_text": outlet.full_text,
            }
            for outlet in corpus.outlets
        ],
    }
    header = "# Demo feeds served by `aggregator demo` from a local server; made-up outlets and news.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


# ---------------------------------------------------------------------------------------------- driver


def serve_round(site: LocalSite, corpus: DemoCorpus, round: int) -> None:
    """Publish what the outlets show in ``round`` on the local server."""
    for path, (body, content_type) in render_site(corpus, site.base_url, round).items():
        site.put(path, body, content_type)


def stamped(corpus: DemoCorpus, now: datetime) -> DemoCorpus:
    """The corpus moved in time so that its newest article was published a few minutes before ``now``.

    The gaps between articles (which clustering reads) are kept; only the date changes, so the demo's stories
    are recent news whenever it runs and ``aggregator digest`` and ``stories`` show them afterwards.
    """
    newest = max(a.published for a in corpus.articles)
    target = (now.astimezone(UTC) - STAMP_MARGIN).replace(second=0, microsecond=0)
    shift = target - newest
    articles = [replace(a, published=a.published + shift) for a in corpus.articles]
    return DemoCorpus(outlets=corpus.outlets, articles=articles, rounds=corpus.rounds)


def _unfinished(engine) -> bool:
    with Session(engine) as session:
        return session.get(Meta, UNFINISHED_KEY) is not None


def _stamped_at(engine) -> datetime | None:
    with Session(engine) as session:
        row = session.get(Meta, STAMP_KEY)
    return datetime.fromisoformat(row.value) if row else None


def _holds_feeds(engine) -> bool:
    """Whether the database has polled any feed (it is someone's news, not a demo's)."""
    with Session(engine) as session:
        return session.exec(select(Feed.id).limit(1)).first() is not None


def run_demo(
    database: str | None = None,
    fmt: str = "text",
    corpus: DemoCorpus | None = None,
    now: datetime | None = None,
    tz: str = "UTC",
) -> str:
    """Poll the demo outlets over their rounds through the real pipeline; returns the progress and digest.

    Without ``database`` the data goes to a temporary database that is thrown away. A kept database that
    already holds the demo is not polled again (the demo's made-up outlets would be stored twice, under the
    new port of the local server): its stories are shown as they are.
    """
    corpus = corpus or load_corpus()
    now = now or datetime.now(UTC)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aggregator-demo-") as tmp, LocalSite() as site:
        config = parse_config(demo_feeds_yaml(corpus, site.base_url), "demo feeds")
        engine = open_database(database or f"sqlite:///{tmp}/demo.db")
        try:
            before = _stamped_at(engine)
            if before is None and _holds_feeds(engine):
                raise StoreError(f"{shown_url(database)} already holds other feeds: the demo's made-up news would mix "
                                 "with them; give the demo a new database (--database sqlite:///demo.db)")
            if before is None:
                with session_scope(engine) as session:
                    session.merge(Meta(key=STAMP_KEY, value=now.astimezone(UTC).isoformat()))
                    session.merge(Meta(key=UNFINISHED_KEY, value="1"))
                corpus = stamped(corpus, now)
                for round_number in range(1, corpus.rounds + 1):
                    serve_round(site, corpus, round_number)
                    results = poll_once(engine, config)
                    new = sum(r.new_entries for r in results)
                    failed = [f"{r.feed}: {r.error}" for r in results if r.status == "error"]
                    lines.append(f"round {round_number}: polled {len(results)} feeds, {new} new articles"
                                 + (f", failures: {'; '.join(failed)}" if failed else ""))
                with session_scope(engine) as session:
                    session.delete(session.get(Meta, UNFINISHED_KEY))
            elif _unfinished(engine):
                raise StoreError(f"{shown_url(database)} holds a demo that was interrupted: delete it and run the demo "
                                 "again")
            else:
                now = before
                corpus = stamped(corpus, now)
                lines.append(f"this database already holds the demo, polled {format_time(now, tz)}; "
                             "shown as it is, not polled again")
            since = min(a.published for a in corpus.articles)
            stories = list_stories(engine, since=since, limit=None)
        finally:
            engine.dispose()
    # every story of the corpus, though its 18 hours may begin the day before
    day = now.astimezone(ZoneInfo(tz)).date()
    rendered = render_digest(Digest(day=day, generated_at=now, stories=stories, timezone=tz), fmt)
    if fmt != "text":
        return rendered
    if database:
        hint = f"Kept in {database}; read it with:\n  aggregator --database {database} stories  (or digest, story ID)"
    else:
        hint = "The demo's database was temporary; `aggregator --database sqlite:///demo.db demo` keeps it."
    return "\n".join(lines) + "\n\n" + rendered + "\n" + hint + "\n"
