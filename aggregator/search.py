"""Full-text search over article titles and texts: ranked, grouped by story, with highlighted snippets.

SQLite keeps an FTS5 index (external content on ``article``, filled by triggers, so every write path keeps it
current) ranked by bm25 with the title weighted above the text. PostgreSQL keeps a generated ``tsvector`` column
with a GIN index, ranked by ts_rank_cd. User text never reaches MATCH or to_tsquery as typed: it is parsed here
into words, "phrases" and prefix* terms, and every word is quoted, so no input is an FTS or SQL syntax error.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from .models import Story
from .query import StoryEntry, _entries
from .store import StoreError

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_WORDS = 20
MAX_PAGE = 100  # stories per page
MAX_HITS = 2000  # best-ranked articles considered per query: bounds the work, and how deep paging reaches
HITS_PER_STORY = 3
TITLE_WEIGHT = 5.0  # bm25 column weights (SQLite); PostgreSQL weighs the title as A, the text as B
TEXT_WEIGHT = 1.0
SNIPPET_WORDS = 24
ELLIPSIS = "…"
# Highlight markers: stored strings hold no control characters, so these cannot collide with text.
START, STOP = "\x02", "\x03"

FTS_TABLE = "article_search"
PG_CONFIG = "aggregator_search"  # the 'simple' configuration, with accents folded when unaccent is available
PG_TEXT_CHARS = 100_000  # a tsvector holds at most 1 MB: index the start of very long texts


class SearchError(ValueError):
    """A query that cannot be searched; the message is one line for the user."""


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
            title, text, content='article', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
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
            import sqlite3

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


@dataclass
class _Group:
    story_id: int
    rank: float
    source_count: int
    last_updated: datetime
    hits: list[tuple[int, float]]  # (article id, rank), best first


def search_stories(
    engine: Engine,
    q: str,
    *,
    limit: int = 20,
    offset: int = 0,
    since: datetime | None = None,
    min_sources: int = 1,
    sources: list[str] | None = None,
    until: datetime | None = None,
) -> list[StoryHits]:
    """Stories with articles matching ``q``, best first, each with its best few matching articles.

    A story ranks as its best article (ties: more sources, then more recent). ``since``/``until`` and
    ``min_sources`` filter stories as :func:`aggregator.query.list_stories` does; ``sources`` keeps articles
    from these feeds (``source_key``). ``limit`` is capped at :data:`MAX_PAGE`; only the :data:`MAX_HITS`
    best articles are considered, which bounds how deep ``offset`` reaches.
    """
    terms = parse_query(q)
    limit = max(0, min(limit or MAX_PAGE, MAX_PAGE))
    offset = max(0, offset)
    groups = _ranked_groups(engine, terms, since, until, min_sources, sources)
    page = groups[offset : offset + limit]
    if not page:
        return []
    with Session(engine) as session:
        stories = {s.id: s for s in session.exec(select(Story).where(Story.id.in_([g.story_id for g in page])))}
        entries = {e.id: e for e in _entries(session, [stories[g.story_id] for g in page])}
    wanted = [article_id for g in page for article_id, _ in g.hits]
    details = _hit_details(engine, terms, wanted)
    results = []
    for group in page:
        hits = []
        for article_id, rank in group.hits:
            hit = details[article_id]
            hit.rank = rank
            hits.append(hit)
        results.append(StoryHits(entries[group.story_id], hits, group.rank))
    return results


def matching_story_ids(engine: Engine, q: str, limit: int = 1000) -> list[int]:
    """Ids of the stories matching ``q``, best first (at most ``limit``, from the best :data:`MAX_HITS`
    articles)."""
    groups = _ranked_groups(engine, parse_query(q), None, None, 1, None)
    return [g.story_id for g in groups[: max(0, limit)]]


def _ranked_groups(engine: Engine, terms: list[Term], since: datetime | None, until: datetime | None,
                   min_sources: int, sources: list[str] | None) -> list[_Group]:
    rows = _best_hits(engine, terms, since, until, min_sources, sources)
    groups: dict[int, _Group] = {}
    for article_id, story_id, rank, source_count, last_updated in rows:  # best first
        group = groups.get(story_id)
        if group is None:
            group = groups[story_id] = _Group(story_id, rank, source_count, last_updated, [])
        if len(group.hits) < HITS_PER_STORY:
            group.hits.append((article_id, rank))
    return sorted(groups.values(), key=lambda g: (g.rank, g.source_count, g.last_updated, g.story_id), reverse=True)


def _filters(since: datetime | None, until: datetime | None, min_sources: int,
             sources: list[str] | None) -> tuple[str, dict]:
    clauses, params = ["s.merged_into IS NULL"], {}
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
    return " AND ".join(clauses), params


def _best_hits(engine: Engine, terms: list[Term], since: datetime | None, until: datetime | None,
               min_sources: int, sources: list[str] | None) -> list[tuple]:
    """(article id, story id, rank, story's source count, story's last update) of the best matches."""
    where, params = _filters(since, until, min_sources, sources)
    if engine.dialect.name == "postgresql":
        sql = f"""
            SELECT a.id, a.story_id, ts_rank_cd(a.search, q, 1) AS score, s.source_count, s.last_updated
            FROM to_tsquery('{PG_CONFIG}', :query) AS q, article AS a JOIN story AS s ON s.id = a.story_id
            WHERE a.search @@ q AND {where}
            ORDER BY score DESC, a.id DESC LIMIT :cap"""
        params["query"] = tsquery_expression(terms)
    else:
        sql = f"""
            SELECT a.id, a.story_id, -f.rank AS score, s.source_count, s.last_updated
            FROM {FTS_TABLE} AS f JOIN article AS a ON a.id = f.rowid JOIN story AS s ON s.id = a.story_id
            WHERE {FTS_TABLE} MATCH :query AND f.rank MATCH 'bm25({TITLE_WEIGHT}, {TEXT_WEIGHT})' AND {where}
            ORDER BY f.rank LIMIT :cap"""
        params["query"] = fts5_expression(terms)
    params["cap"] = MAX_HITS
    statement = text(sql).columns(last_updated=DateTime)
    for name in ("since", "until"):
        if name in params:
            statement = statement.bindparams(bindparam(name, type_=DateTime))
    if "sources" in params:
        statement = statement.bindparams(bindparam("sources", expanding=True))
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement, params)]


def _hit_details(engine: Engine, terms: list[Term], article_ids: list[int]) -> dict[int, SearchHit]:
    """Title, source, link, time and highlighted snippet of the given matching articles (one page's worth)."""
    if not article_ids:
        return {}
    if engine.dialect.name == "postgresql":
        options = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"
        snippet = (f"StartSel={START}, StopSel={STOP}, MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}, "
                   f"MaxFragments=1")
        sql = f"""
            SELECT a.id, a.story_id, a.title, a.source, coalesce(a.canonical_url, a.url) AS url, a.published_at,
                   ts_headline('{PG_CONFIG}', coalesce(a.title, ''), q, :title_options),
                   ts_headline('{PG_CONFIG}', left(coalesce(a.text, ''), {PG_TEXT_CHARS}), q, :snippet_options)
            FROM to_tsquery('{PG_CONFIG}', :query) AS q, article AS a
            WHERE a.id IN :ids"""
        params = {"query": tsquery_expression(terms), "title_options": options, "snippet_options": snippet}
    else:
        sql = f"""
            SELECT a.id, a.story_id, a.title, a.source, coalesce(a.canonical_url, a.url) AS url, a.published_at,
                   highlight({FTS_TABLE}, 0, :start, :stop),
                   snippet({FTS_TABLE}, 1, :start, :stop, :ellipsis, {SNIPPET_WORDS})
            FROM {FTS_TABLE} AS f JOIN article AS a ON a.id = f.rowid
            WHERE {FTS_TABLE} MATCH :query AND f.rowid IN :ids"""
        params = {"query": fts5_expression(terms), "start": START, "stop": STOP, "ellipsis": ELLIPSIS}
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


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
