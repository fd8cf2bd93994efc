"""Full-text search over article titles and texts: ranked, grouped by story, with highlighted snippets.

SQLite keeps an FTS5 index (external content on ``article``, filled by triggers, so every write path keeps it
current) ranked by bm25 with the title weighted above the text. PostgreSQL keeps a generated ``tsvector`` column
with a GIN index, ranked by ts_rank_cd. User text never reaches MATCH or to_tsquery as typed: it is parsed here
into words, "phrases" and prefix* terms, and every word is quoted, so no input is an FTS or SQL syntax error.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import DateTime, bindparam, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from .errors import SearchError
from .models import Story
from .query import StoryEntry, _entries, _naive_utc
from .store import StoreError

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_WORDS = 20
MAX_PAGE = 100  # stories per page
# The newest matching articles ranked per query: bounds the work a common word costs. PostgreSQL reads each
# candidate's whole tsvector (decompressed) to rank it, so it ranks fewer.
CANDIDATES = 5000
PG_CANDIDATES = 1000
HITS_PER_STORY = 3
TITLE_WEIGHT = 5.0  # bm25 column weights (SQLite); PostgreSQL weighs the title as A, the text as B
TEXT_WEIGHT = 1.0
SNIPPET_WORDS = 24
ELLIPSIS = "…"
# Highlight markers: stored strings hold no control characters, so these cannot collide with text.
START, STOP = "\x02", "\x03"

FTS_TABLE = "article_search"
LOOKUP_INDEX = "ix_article_search_lookup"  # (id, story_id, source_key): a hit's story without reading its row
MIN_PREFIX = 3  # characters before a *, East Asian wide ones counting two; the index keeps 3-character prefixes
PG_CONFIG = "aggregator_search"  # the 'simple' configuration, with accents folded when unaccent is available
PG_TEXT_CHARS = 100_000  # a tsvector holds at most 1 MB: index the start of very long texts
PG_WINDOW_CHARS = 1200  # the stretch of text a snippet is chosen from


@dataclass(frozen=True)
class Term:
    """One thing every match must contain: a word, or the words of a phrase in order; ``prefix``: the last
    word may continue (``storm*``)."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass
class SearchHit:
    """One matching article."""

    article_id: int
    story_id: int
    title: str
    source: str
    url: str | None
    published: datetime | None  # naive UTC
    snippet: list[tuple[str, bool]]  # segments of the text around the match; True marks a matched word
    rank: float  # higher is better
    title_segments: list[tuple[str, bool]] = field(default_factory=list)  # the title, matched words marked


@dataclass
class StoryHits:
    story: StoryEntry
    hits: list[SearchHit]  # the story's best matching articles, best first
    rank: float  # the best hit's rank


# ---- the query language ---------------------------------------------------------------------------------------


def _is_word_char(char: str) -> bool:
    # What SQLite's unicode61 tokenizer keeps in a token: letters, numbers, marks and private-use characters.
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


# Punctuation inside a word joins its parts into a phrase ("e-mail", "U.S.", "l'été"); any other separates words.
JOINERS = frozenset("-.'’/:&@+*")


def _chunks(part: str) -> list[str]:
    """``part`` (outside quotes) cut at white space and at punctuation that does not join words."""
    chunks, current = [], []
    for char in part + " ":
        if _is_word_char(char) or char in JOINERS:
            current.append(char)
        elif current:
            chunks.append("".join(current))
            current = []
    return chunks


def _words(chunk: str) -> tuple[list[str], bool]:
    """The words of ``chunk`` (lower-cased), and whether a ``*`` right after the last one makes it a prefix."""
    words, start, end = [], None, 0
    for index, char in enumerate(chunk + " "):
        if _is_word_char(char):
            start = index if start is None else start
        elif start is not None:
            words.append(chunk[start:index].lower())
            start, end = None, index
    return words, bool(words) and chunk[end : end + 1] == "*"


def _width(word: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in word)


def parse_query(q: str) -> list[Term]:
    """The terms of a user's query: words in any order, "quoted phrases", prefix* words.

    An unbalanced quote is closed at the end; operators (AND, OR, NOT, NEAR) are plain words; other punctuation
    separates words, and words it joins (``e-mail``, ``U.S.``) must appear together, as a phrase.
    """
    if q is None or not q.strip():
        raise SearchError("empty search: give one or more words")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchError(f"search too long: {len(q):,} characters, at most {MAX_QUERY_CHARS}")
    q = unicodedata.normalize("NFC", q)
    terms: list[Term] = []
    for index, part in enumerate(q.split('"')):
        quoted = index % 2 == 1
        for chunk in [part] if quoted else _chunks(part):
            words, prefix = _words(chunk)
            if words:
                term = Term(tuple(words), prefix)
                if term not in terms:
                    terms.append(term)
    if not terms:
        raise SearchError("nothing to search for: the query has no words, only punctuation")
    for term in terms:
        if term.prefix and _width(term.words[-1]) < MIN_PREFIX:
            raise SearchError(f"a prefix needs at least {MIN_PREFIX} letters before the *: {term.words[-1]}*")
    count = sum(len(t.words) for t in terms)
    if count > MAX_WORDS:
        raise SearchError(f"search has too many words: {count}, at most {MAX_WORDS}")
    return terms


def fts5_expression(terms: list[Term]) -> str:
    """An FTS5 MATCH expression: every term must match, each word quoted (so none is an operator)."""
    parts = []
    for term in terms:
        quoted = '"' + " ".join(term.words).replace('"', '""') + '"'
        parts.append(quoted + " *" if term.prefix else quoted)
    return " AND ".join(parts)


def tsquery_expression(terms: list[Term]) -> str:
    """A to_tsquery expression: terms joined by &, phrase words by <->, a prefix as :*, each lexeme quoted."""

    def lexeme(word: str) -> str:
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = []
    for term in terms:
        words = [lexeme(w) for w in term.words]
        if term.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")" if len(words) > 1 else words[0])
    return " & ".join(parts)


# ---- the index ----------------------------------------------------------------------------------------------


def create_search_index(engine: Engine) -> None:
    """Create the full-text index and fill it from the stored articles (schema version 3)."""
    if engine.dialect.name == "sqlite":
        _create_fts5(engine)
    elif engine.dialect.name == "postgresql":
        _create_tsvector(engine)
    else:
        raise StoreError(f"full-text search is not supported on {engine.dialect.name}")


def _create_fts5(engine: Engine) -> None:
    # External content: the index stores no second copy of the text; snippet() reads it from article.
    # Triggers rather than the ingest path keep it current, so every writer (ingest, replay, maintenance, a
    # script) does; an update of other columns (a merge moves story_id) leaves the index alone.
    statements = [
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
            title, text, content='article', content_rowid='id', tokenize='unicode61 remove_diacritics 2',
            prefix='3')""",
        f"CREATE INDEX IF NOT EXISTS {LOOKUP_INDEX} ON article (id, story_id, source_key)",
        f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON article BEGIN
            INSERT INTO {FTS_TABLE}(rowid, title, text) VALUES (new.id, new.title, new.text); END""",
        f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON article BEGIN
            INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
            END""",
        f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_update AFTER UPDATE OF title, text ON article BEGIN
            INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
            INSERT INTO {FTS_TABLE}(rowid, title, text) VALUES (new.id, new.title, new.text); END""",
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
    ]
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    except Exception as exc:
        if "fts5" in str(exc).lower():
            raise StoreError(f"this SQLite ({sqlite3.sqlite_version}) lacks FTS5, which search needs") from exc
        raise


def _create_tsvector(engine: Engine) -> None:
    present = {column["name"] for column in inspect(engine).get_columns("article")}
    with engine.begin() as connection:
        _create_pg_config(connection)
        if "search" not in present:
            # A generated column recomputes itself on every write, so it needs no help from the ingest path.
            connection.execute(text(f"""
                ALTER TABLE article ADD COLUMN search tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('{PG_CONFIG}', coalesce(title, '')), 'A') ||
                    setweight(to_tsvector('{PG_CONFIG}', left(coalesce(text, ''), {PG_TEXT_CHARS})), 'B')
                ) STORED"""))
        connection.execute(text("CREATE INDEX IF NOT EXISTS ix_article_search ON article USING GIN (search)"))


def _create_pg_config(connection: Connection) -> None:
    """The text search configuration: 'simple' (no stemming, no stop words: news come in many languages),
    with accents folded by the unaccent extension when the server has it."""
    exists = connection.execute(text(
        "SELECT 1 FROM pg_ts_config WHERE cfgname = :name AND cfgnamespace = current_schema()::regnamespace"
    ), {"name": PG_CONFIG}).first()
    if exists:
        return
    connection.execute(text(f"CREATE TEXT SEARCH CONFIGURATION {PG_CONFIG} (COPY = simple)"))
    try:
        with connection.begin_nested():
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS unaccent"))
            connection.execute(text(
                f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} ALTER MAPPING FOR "
                "word, hword, hword_part, numword, numhword, hword_numpart WITH unaccent, simple"
            ))
    except Exception as exc:
        log.warning("search: the unaccent extension is unavailable (%s); accents will not be folded",
                    str(exc).splitlines()[0])


# ---- searching ----------------------------------------------------------------------------------------------


def search_stories(
    engine: Engine,
    q: str,
    *,
    limit: int | None = 20,
    offset: int = 0,
    since: datetime | None = None,
    min_sources: int = 1,
    sources: list[str] | None = None,
    until: datetime | None = None,
) -> list[StoryHits]:
    """Stories with articles matching ``q``, best first, each with its best few matching articles.

    A story ranks as its best article (ties: more sources, then more recent). ``since``/``until`` and
    ``min_sources`` filter stories as :func:`aggregator.query.list_stories` does; ``sources`` keeps articles
    from these feeds (``source_key``). ``limit`` is capped at :data:`MAX_PAGE` (None: that many). The newest
    :data:`CANDIDATES` (:data:`PG_CANDIDATES` on PostgreSQL) matching articles are ranked: every match, but for
    the commonest words. Raises :class:`SearchError` for a query that cannot be searched.
    """
    terms = parse_query(q)
    limit = MAX_PAGE if limit is None else max(0, min(limit, MAX_PAGE))
    candidates, params = _candidates(engine, terms, since, until, min_sources, sources)
    # One statement ranks the candidates' stories and returns the matching articles of one page of them.
    sql = f"""
        WITH c AS {_materialized(engine)} ({candidates}),
        page AS (SELECT story_id, max(score) AS best, max(sources) AS sources, max(updated) AS updated FROM c
                 GROUP BY story_id ORDER BY best DESC, sources DESC, updated DESC, story_id DESC
                 LIMIT :limit OFFSET :offset)
        SELECT c.story_id, c.id, c.score FROM c JOIN page ON page.story_id = c.story_id
        ORDER BY page.best DESC, page.sources DESC, page.updated DESC, page.story_id DESC, c.score DESC, c.id DESC"""
    params.update(limit=limit, offset=max(0, offset))
    ranked: dict[int, list[tuple[int, float]]] = {}  # story id -> its best (article id, rank), page order
    with engine.connect() as connection:
        for story_id, article_id, rank in connection.execute(_statement(sql, params), params):
            hits = ranked.setdefault(story_id, [])
            if len(hits) < HITS_PER_STORY:
                hits.append((article_id, rank))
    if not ranked:
        return []
    with Session(engine) as session:
        stories = {s.id: s for s in session.exec(select(Story).where(Story.id.in_(list(ranked))))}
        entries = {e.id: e for e in _entries(session, [stories[story_id] for story_id in ranked])}
    details = _hit_details(engine, terms, [article_id for hits in ranked.values() for article_id, _ in hits])
    results = []
    for story_id, best in ranked.items():
        hits = [replace(details[article_id], rank=rank) for article_id, rank in best]
        results.append(StoryHits(entries[story_id], hits, hits[0].rank))
    return results


def matching_story_ids(engine: Engine, q: str, limit: int = 1000) -> list[int]:
    """Ids of the stories matching ``q``, best first (at most ``limit``; ranked as :func:`search_stories`)."""
    candidates, params = _candidates(engine, parse_query(q), None, None, 1, None)
    sql = f"""
        WITH c AS {_materialized(engine)} ({candidates})
        SELECT story_id FROM c GROUP BY story_id
        ORDER BY max(score) DESC, max(sources) DESC, max(updated) DESC, story_id DESC LIMIT :limit"""
    params["limit"] = max(0, limit)
    with engine.connect() as connection:
        return list(connection.execute(_statement(sql, params), params).scalars())


def _candidates(engine: Engine, terms: list[Term], since: datetime | None, until: datetime | None,
                min_sources: int, sources: list[str] | None) -> tuple[str, dict]:
    """SQL for the newest :data:`CANDIDATES` matching articles whose stories pass the filters: id, story_id,
    score (higher is better), sources and updated (the story's source count and last update); and its
    parameters.

    Matches are walked newest first and only those are ranked: ranking costs microseconds an article, and a
    word found in most articles must not cost a read of all of them.
    """
    postgres = engine.dialect.name == "postgresql"
    clauses, params = ["s.merged_into IS NULL"], {"candidates": PG_CANDIDATES if postgres else CANDIDATES}
    if since is not None:
        clauses.append("s.last_updated >= :since")
        params["since"] = _naive_utc(since)
    if until is not None:
        clauses.append("s.first_seen < :until")
        params["until"] = _naive_utc(until)
    if min_sources > 1:
        clauses.append("s.source_count >= :min_sources")
        params["min_sources"] = min_sources
    if sources is not None:
        clauses.append("a.source_key IN :sources")
        params["sources"] = list(sources) or [""]  # an empty list keeps nothing
    where = " AND ".join(clauses)
    if postgres:
        params["query"] = tsquery_expression(terms)
        return f"""
            SELECT m.id, m.story_id, ts_rank_cd(m.search, q, 1) AS score, m.sources, m.updated
            FROM (SELECT a.id, a.story_id, a.search, s.source_count AS sources, s.last_updated AS updated
                  FROM article AS a JOIN story AS s ON s.id = a.story_id
                  WHERE a.search @@ to_tsquery('{PG_CONFIG}', :query) AND {where}
                  ORDER BY a.id DESC LIMIT :candidates) AS m, to_tsquery('{PG_CONFIG}', :query) AS q""", params
    params["query"] = fts5_expression(terms)
    # the covering index gives story and feed without reading the article's row (and its text)
    return f"""
        SELECT f.rowid AS id, a.story_id, -bm25({FTS_TABLE}, {TITLE_WEIGHT}, {TEXT_WEIGHT}) AS score,
               s.source_count AS sources, s.last_updated AS updated
        FROM {FTS_TABLE} AS f JOIN article AS a INDEXED BY {LOOKUP_INDEX} ON a.id = f.rowid
             JOIN story AS s ON s.id = a.story_id
        WHERE {FTS_TABLE} MATCH :query AND {where}
        ORDER BY f.rowid DESC LIMIT :candidates""", params


def _materialized(engine: Engine) -> str:
    """The candidates are read twice but ranked once (SQLite before 3.35 has no such keyword)."""
    if engine.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        return ""
    return "MATERIALIZED"


def _statement(sql: str, params: dict):
    statement = text(sql).bindparams(*(bindparam(name, type_=DateTime) for name in ("since", "until")
                                       if name in params))
    if "sources" in params:
        statement = statement.bindparams(bindparam("sources", expanding=True))
    return statement


def _hit_details(engine: Engine, terms: list[Term], article_ids: list[int]) -> dict[int, SearchHit]:
    """Title, source, link, time and highlighted snippet of the given matching articles (one page's worth)."""
    if not article_ids:
        return {}
    if engine.dialect.name == "postgresql":
        options = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"
        snippet = f"StartSel={START}, StopSel={STOP}, MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}"
        # ts_headline parses all the text it is given: give it a window around the first place the query's
        # longest word occurs as a substring (a cheap guess; the start of the text when it is not found)
        sql = f"""
            SELECT a.id, a.story_id, a.title, a.source, coalesce(a.canonical_url, a.url) AS url, a.published_at,
                   ts_headline('{PG_CONFIG}', coalesce(a.title, ''), q, :title_options),
                   CASE WHEN w.start > 1 THEN :ellipsis ELSE '' END ||
                   ts_headline('{PG_CONFIG}', substr(coalesce(a.text, ''), w.start, {PG_WINDOW_CHARS}), q,
                               :snippet_options)
            FROM to_tsquery('{PG_CONFIG}', :query) AS q, article AS a, LATERAL (
                SELECT greatest(1, strpos(lower(left(coalesce(a.text, ''), {PG_TEXT_CHARS})), :needle)
                                   - {PG_WINDOW_CHARS // 4}) AS start) AS w
            WHERE a.id IN :ids"""
        needle = max((word for term in terms for word in term.words), key=len)
        params = {"query": tsquery_expression(terms), "title_options": options, "snippet_options": snippet,
                  "needle": needle, "ellipsis": ELLIPSIS}
    else:
        sql = f"""
            SELECT a.id, a.story_id, a.title, a.source, coalesce(a.canonical_url, a.url) AS url, a.published_at,
                   highlight({FTS_TABLE}, 0, :start, :stop),
                   snippet({FTS_TABLE}, 1, :start, :stop, :ellipsis, {SNIPPET_WORDS})
            FROM {FTS_TABLE} AS f JOIN article AS a ON a.id = f.rowid
            WHERE {FTS_TABLE} MATCH :query AND f.rowid BETWEEN :first AND :last AND +f.rowid IN :ids"""
        # the query runs once over a range of rows: a rowid IN list would run it (a prefix's expansion
        # included) once per article
        params = {"query": fts5_expression(terms), "start": START, "stop": STOP, "ellipsis": ELLIPSIS,
                  "first": min(article_ids), "last": max(article_ids)}
    params["ids"] = list(article_ids)
    statement = text(sql).columns(published_at=DateTime).bindparams(bindparam("ids", expanding=True))
    details = {}
    with engine.connect() as connection:
        for article_id, story_id, title, source, url, published, marked_title, marked_text in connection.execute(
            statement, params
        ):
            details[article_id] = SearchHit(
                article_id=article_id, story_id=story_id, title=title, source=source, url=url, published=published,
                snippet=segments(marked_text or ""), rank=0.0, title_segments=segments(marked_title or title or ""),
            )
    return details


def segments(marked: str) -> list[tuple[str, bool]]:
    """Split text with START/STOP markers into (text, highlighted) segments; adjacent alike segments join."""
    result: list[tuple[str, bool]] = []
    highlighted = False
    current: list[str] = []

    def flush() -> None:
        piece = "".join(current)
        current.clear()
        if not piece:
            return
        if result and result[-1][1] == highlighted:
            result[-1] = (result[-1][0] + piece, highlighted)
        else:
            result.append((piece, highlighted))

    for char in marked:
        if char in (START, STOP):
            flush()
            highlighted = char == START
        else:
            current.append(char)
    flush()
    return result
