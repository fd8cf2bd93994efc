"""The web app: pages, feeds out and the HTTP API over one :class:`~aggregator.api.Aggregator`, read-only.

Every request's work is bounded: pages hold at most ``PAGE_SIZE`` stories, the API at most ``MAX_LIMIT``,
paging stops at ``MAX_OFFSET`` and a search query at ``MAX_QUERY`` characters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import query
from ..api import Aggregator
from ..config import parse_since as config_parse_since
from ..digest import all_copies, clean_text, digest_to_dict, iso_time
from . import feeds as feeds_out
from . import schemas
from .render import environment

log = logging.getLogger("aggregator.web")


@dataclass
class StoryFeedFilters:
    """The river's filters, as the story feeds take them (``?since=&tag=&min_sources=&q=``)."""

    since: Annotated[str, Query(max_length=40)] = "3d"
    tag: Annotated[str, Query(max_length=100)] = ""
    min_sources: Annotated[int, Query(ge=1, le=1000)] = 1
    q: Annotated[str, Query(max_length=20_000)] = ""

PAGE_SIZE = 30
MAX_LIMIT = 100
MAX_OFFSET = 10_000
MAX_PAGE = MAX_OFFSET // PAGE_SIZE
MAX_QUERY = 500
ARCHIVE_PAGE = 60
DEFAULT_SINCE = "24h"
SINCE_CHOICES = [("6h", "6 hours"), ("24h", "24 hours"), ("3d", "3 days"), ("7d", "7 days"), ("30d", "30 days"),
                 ("all", "all time")]
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
STATIC = Path(__file__).parent / "static"


class BadInput(Exception):
    """A request parameter that cannot be used; its message is shown to the user (status 400)."""


@dataclass
class TimelineEvent:
    when: datetime
    kind: str
    source: str
    title: str
    article_id: int


def parse_since(value: str | None, default: str | None = DEFAULT_SINCE) -> datetime | None:
    """A time from ``6h``/``2d`` (back from now) or ISO 8601; ``all`` (or empty) means no bound."""
    try:
        return config_parse_since(value if value is not None else default or "")
    except ValueError as exc:
        raise BadInput(f"since: {exc}") from None


def parse_day(value: str) -> date | None:
    """A digest day from ``YYYY-MM-DD``, or ``None`` for anything else (or a year no digest can have)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if 1970 <= day.year <= 9000 else None


def timeline_of(detail: query.StoryDetail) -> list[TimelineEvent]:
    """How the story developed: the first report, then each new outlet and each new article from a known one."""
    events: list[TimelineEvent] = []
    outlets: set[str] = set()
    for article in detail.articles:  # oldest first
        if not events:
            kind = "first report"
        elif article.source not in outlets:
            kind = "new outlet" + (" (copy)" if article.duplicate_of else "")
        elif article.duplicate_of is None:
            kind = "new angle"
        else:
            continue
        outlets.add(article.source)
        events.append(TimelineEvent(article.published or article.fetched, kind, article.source, article.title,
                                    article.id))
    return events


def article_groups(detail: query.StoryDetail) -> list[dict]:
    """Each original article with the copies folded under it, in the order of the story's sources."""
    views = {a.id: a for a in detail.articles}
    groups = []
    for source in detail.story.sources:
        if source.article_id in views:
            copies = [views[c.article_id] for c in all_copies(source) if c.article_id in views]
            groups.append({"article": views[source.article_id], "copies": copies})
    return groups


def _json(content) -> JSONResponse:
    """The API's answer as built (its shape is the response model's, which the schema tests check): returning a
    response skips re-validating every nested story, which costs more than building it."""
    return JSONResponse(content)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith(".json") or path in ("/healthz", "/openapi.json")


class _HeadAsGet:
    """Answers HEAD as GET without the body (FastAPI routes take GET only; `curl -I` and uptime checks use HEAD)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def create_app(agg: Aggregator) -> FastAPI:
    """The web app over ``agg``'s database; it only reads."""
    settings = agg.settings
    env = environment(settings.timezone)
    tags: dict[str, list[str]] = {}
    for feed in agg.config.feeds if agg.config else []:
        for tag in feed.tags:
            tags.setdefault(tag, []).append(feed.name)
    configured = [f.name for f in agg.config.feeds] if agg.config else []

    app = FastAPI(
        title="aggregator", version="1",
        description="Read-only API of a news aggregator: story clusters with all their sources, search, digests, "
                    "feed health.",
        docs_url=None, redoc_url=None,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.aggregator = agg
    app.add_middleware(_HeadAsGet)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("query", "")
        context.setdefault("section", "")
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def error_page(status: int, message: str) -> HTMLResponse:
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 503: "Unavailable"}
        return page("error.html", status, title=titles.get(status, "Error"), message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "Not found"
        if _wants_json(request):
            return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
        return error_page(exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        message = f"{where}: {first.get('msg', 'invalid value')}"
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=400)
        return error_page(400, message)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput):
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return error_page(400, str(exc))

    # ---- shared lookups -----------------------------------------------------------------------------------

    def feeds_of_tag(tag: str | None) -> list[str] | None:
        if not tag:
            return None
        return tags.get(tag, [])

    def stories_for(since: str | None, tag: str | None, min_sources: int, q: str | None, limit: int,
                    offset: int) -> tuple[list[query.StoryEntry], bool]:
        if q:
            results, more = run_search(q, limit, offset, since=parse_since(since, default="all"),
                                       min_sources=min_sources, tag=tag)
            return [r.story for r in results], more
        return query.story_page(agg.engine, since=parse_since(since), min_sources=min_sources,
                                feeds=feeds_of_tag(tag), limit=limit, offset=offset)

    def run_search(q: str, limit: int, offset: int, since: datetime | None = None, min_sources: int = 1,
                   tag: str | None = None) -> tuple[list, bool]:
        """One page of search results and whether more follow; a bad query raises BadInput."""
        q = q.strip()
        if len(q) > MAX_QUERY:
            raise BadInput(f"the search is too long: at most {MAX_QUERY} characters")
        from ..search import MAX_PAGE as SEARCH_PAGE
        from ..search import SearchError, search_stories

        def fetch(count: int, start: int) -> list:
            return search_stories(agg.engine, q, limit=count, offset=start, since=since, min_sources=min_sources,
                                  sources=feeds_of_tag(tag))

        try:
            if limit < SEARCH_PAGE:
                results = fetch(limit + 1, offset)
                return results[:limit], len(results) > limit
            results = fetch(limit, offset)
            return results, len(results) == limit and bool(fetch(1, offset + limit))
        except SearchError as exc:
            raise BadInput(str(exc)) from None

    def detail_or_404(story_id: str) -> query.StoryDetail:
        number = int(story_id) if story_id.isascii() and story_id.isdigit() and len(story_id) < 16 else 0
        detail = agg.story(number) if 0 < number < 2**31 else None  # ids are 32-bit INTEGERs on PostgreSQL
        if detail is None:
            raise HTTPException(404, f"There is no story {story_id[:20]!r}.")
        return detail

    def url_with(request: Request, path: str, **params) -> str:
        kept = {k: v for k, v in params.items() if v not in (None, "", 1) or (k == "since" and v)}
        return path + ("?" + urlencode(kept) if kept else "")

    # ---- pages --------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def river(
        request: Request,
        since: Annotated[str, Query(max_length=40)] = DEFAULT_SINCE,
        tag: Annotated[str, Query(max_length=100)] = "",
        min_sources: Annotated[int, Query(ge=1, le=1000)] = 1,
        page_number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    ):
        offset = (page_number - 1) * PAGE_SIZE
        stories, more = stories_for(since, tag, min_sources, None, PAGE_SIZE, offset)
        filters = {"since": since, "tag": tag, "min_sources": min_sources}
        label = dict(SINCE_CHOICES).get(since, f"since {since}")
        summary = f"Stories updated in the last {label}" if since in dict(SINCE_CHOICES) and since != "all" \
            else ("All stories" if since == "all" else f"Stories updated since {since}")
        if tag:
            summary += f" tagged {clean_text(tag)}"
        if min_sources > 1:
            summary += f", with {min_sources}+ sources"
        return page(
            "river.html", section="river", title="Stories", stories=stories, since=since, tag=tag,
            min_sources=min_sources, tags=sorted(tags), since_choices=SINCE_CHOICES,
            since_values=[v for v, _ in SINCE_CHOICES], summary=summary,
            atom_url=url_with(request, "/stories.atom", **filters),
            json_url=url_with(request, "/stories.json", **filters),
            prev_url=url_with(request, "/", **filters, page=page_number - 1) if page_number > 1 else None,
            next_url=url_with(request, "/", **filters, page=page_number + 1) if more and page_number < MAX_PAGE
            else None,
        )

    @app.get("/stories/{story_id}", response_class=HTMLResponse, include_in_schema=False)
    def story_page(story_id: str):
        detail = detail_or_404(story_id)
        if str(detail.story.id) != story_id:
            return RedirectResponse(f"/stories/{detail.story.id}", status_code=301)
        return page("story.html", section="river", title=clean_text(detail.story.headline) or "Story",
                    detail=detail, groups=article_groups(detail), timeline=timeline_of(detail))

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(
        request: Request,
        q: Annotated[str, Query(max_length=20_000)] = "",
        page_number: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    ):
        results, more, error = [], False, None
        shown = clean_text(q[:MAX_QUERY])  # echoed into the page: no control or invisible characters
        if q.strip():
            try:
                results, more = run_search(q, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
            except BadInput as exc:
                error = str(exc)
        return page(
            "search.html", 400 if error else 200, section="search",
            title=f"Search: {clean_text(shown)}" if shown.strip() else "Search", query=shown, results=results,
            error=error, atom_url=url_with(request, "/stories.atom", q=shown, since="all"),
            prev_url=url_with(request, "/search", q=shown, page=page_number - 1) if page_number > 1 else None,
            next_url=url_with(request, "/search", q=shown, page=page_number + 1) if more and page_number < MAX_PAGE
            else None,
        )

    @app.get("/digest", response_class=HTMLResponse, include_in_schema=False)
    def archive(request: Request, page_number: Annotated[int, Query(alias="page", ge=1, le=100)] = 1):
        days = query.digest_days(agg.engine, settings.timezone, limit=ARCHIVE_PAGE * page_number + 1)
        start = (page_number - 1) * ARCHIVE_PAGE
        shown = days[start:start + ARCHIVE_PAGE]
        return page(
            "archive.html", section="digest", title="Daily digests", days=shown,
            prev_url=url_with(request, "/digest", page=page_number - 1) if page_number > 1 else None,
            next_url=url_with(request, "/digest", page=page_number + 1) if len(days) > start + ARCHIVE_PAGE else None,
        )

    @app.get("/digest/{day}", response_class=HTMLResponse, include_in_schema=False)
    def digest_page(day: str):
        when = parse_day(day)
        if when is None:
            raise HTTPException(404, f"There is no digest for {day[:20]!r}: expected a date as YYYY-MM-DD.")
        digest = agg.digest(when)
        days = [d for d, _ in query.digest_days(agg.engine, settings.timezone)]
        older = next((d for d in days if d < when), None)
        newer = next((d for d in reversed(days) if d > when), None)
        return page(
            "digest.html", section="digest", title=f"Digest — {when.strftime('%A %d %B %Y')}", digest=digest,
            prev_url=f"/digest/{newer.isoformat()}" if newer else None, prev_label=f"newer: {newer}" if newer else "",
            next_url=f"/digest/{older.isoformat()}" if older else None, next_label=f"older: {older}" if older else "",
        )

    @app.get("/feeds", response_class=HTMLResponse, include_in_schema=False)
    def feeds_page():
        health = agg.feeds()
        enabled = {f.name: f.enabled for f in agg.config.feeds} if agg.config else {}
        rows = [{"health": h, "state": h.state(enabled=enabled.get(h.name, True))} for h in health]
        known = {h.name for h in health}
        return page("feeds.html", section="feeds", title="Feeds", rows=rows,
                    never_polled=[n for n in configured if n not in known])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return RedirectResponse("/static/favicon.svg", status_code=301)

    # ---- feeds out ----------------------------------------------------------------------------------------

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def story_feed(request: Request, filters: StoryFeedFilters, render, media_type: str) -> Response:
        stories, _ = stories_for(filters.since, filters.tag, filters.min_sources, filters.q, 50, 0)
        title = feeds_out.feed_title(filters.tag, filters.min_sources, filters.q)
        body = render(stories, env, agg, base_url(request), str(request.url), title=title)
        return Response(body, media_type=f"{media_type}; charset=utf-8")

    @app.get("/stories.atom", include_in_schema=False)
    def stories_atom(request: Request, filters: Annotated[StoryFeedFilters, Depends()]):
        return story_feed(request, filters, feeds_out.stories_atom, "application/atom+xml")

    @app.get("/stories.json", include_in_schema=False)
    def stories_json(request: Request, filters: Annotated[StoryFeedFilters, Depends()]):
        return story_feed(request, filters, feeds_out.stories_json_feed, "application/feed+json")

    @app.get("/digest.atom", include_in_schema=False)
    def digest_atom(request: Request):
        days = [d for d, _ in query.digest_days(agg.engine, settings.timezone, limit=feeds_out.DIGEST_ENTRIES)]
        digests = [agg.digest(d) for d in days]
        body = feeds_out.digest_atom(digests, env, agg, base_url(request), str(request.url))
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    # ---- operations ---------------------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"], responses={503: {"model": schemas.Health}},
             response_model=schemas.Health)
    def healthz():
        """Whether the database answers, and when a feed was last polled successfully."""
        try:
            polled = query.last_poll(agg.engine)
        except Exception as exc:  # any database failure is the answer here, not an error page
            log.warning("health check: database unreachable: %s", exc)
            return JSONResponse({"status": "error", "database": f"unreachable: {type(exc).__name__}",
                                 "last_poll": None}, status_code=503)
        return {"status": "ok", "database": "ok", "last_poll": iso_time(polled)}

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        from .metrics import metrics_text

        return Response(metrics_text(agg.engine, agg.config), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ---- HTTP API -----------------------------------------------------------------------------------------

    errors = {400: {"model": schemas.Problem}, 404: {"model": schemas.Problem}}

    @app.get("/api/stories", response_model=schemas.StoryPage, responses=errors, tags=["stories"])
    def api_stories(
        since: Annotated[str, Query(max_length=40, description="6h, 2d, an ISO time, or all")] = DEFAULT_SINCE,
        tag: Annotated[str, Query(max_length=100)] = "",
        min_sources: Annotated[int, Query(ge=1, le=1000)] = 1,
        q: Annotated[str, Query(max_length=20_000, description="full-text search")] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE_SIZE,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ):
        """Stories ranked like the digest (distinct sources, then recency), one page at a time."""
        stories, more = stories_for(since, tag, min_sources, q, limit, offset)
        return _json({"stories": [schemas.story_dict(s) for s in stories], "limit": limit, "offset": offset,
                      "next_offset": offset + limit if more else None})

    @app.get("/api/stories/{story_id}", response_model=schemas.StoryDetailOut, responses=errors, tags=["stories"])
    def api_story(story_id: Annotated[str, PathParam(description="the story id")]):
        """One story with every article and how it joined; a merged story's id redirects to the survivor."""
        detail = detail_or_404(story_id)
        if str(detail.story.id) != story_id:
            return RedirectResponse(f"/api/stories/{detail.story.id}", status_code=301)
        return _json(schemas.detail_dict(detail))

    @app.get("/api/search", response_model=schemas.SearchOut, responses=errors, tags=["stories"])
    def api_search(
        q: Annotated[str, Query(min_length=1, max_length=20_000)],
        since: Annotated[str, Query(max_length=40)] = "all",
        min_sources: Annotated[int, Query(ge=1, le=1000)] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ):
        """Full-text search over titles and article text; results grouped by story, best first."""
        results, more = run_search(q, limit, offset, since=parse_since(since, default="all"),
                                   min_sources=min_sources)
        return _json({"query": q[:MAX_QUERY], "results": [schemas.hits_dict(r) for r in results], "limit": limit,
                      "offset": offset, "next_offset": offset + limit if more else None})

    @app.get("/api/digest/{day}", response_model=schemas.DigestOut, responses=errors, tags=["digest"])
    def api_digest(day: Annotated[str, PathParam(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]):
        """The day's digest (in the configured time zone)."""
        when = parse_day(day)
        if when is None:
            raise HTTPException(404, f"no digest for {day!r}")
        digest = agg.digest(when)
        return _json(digest_to_dict(digest))

    @app.get("/api/feeds", response_model=list[schemas.FeedOut], tags=["feeds"])
    def api_feeds():
        """Every polled feed with its health."""
        return _json([schemas.feed_dict(h) for h in agg.feeds()])

    return app
