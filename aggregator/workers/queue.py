"""The job queue: a procrastinate app on the aggregator's own PostgreSQL database, and the tables it needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from sqlalchemy.engine import URL, Engine, make_url

from ..models import PendingArticle
from ..store import normalize_database_url
from .names import QUEUE, SCHEMA_LOCK_KEY, process_name  # noqa: F401 - QUEUE: the queue this app serves

# Every connection of a cluster process: PostgreSQL notices a vanished peer (a machine switched off, a cable
# pulled) within about idle + interval * count seconds, and frees the locks and jobs it held.
# Keepalives only probe an idle socket; tcp_user_timeout also bounds a peer that stops acknowledging sent data.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
              "tcp_user_timeout": 25000}
SERVER_KEEPALIVES = ("-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
                     "-c tcp_user_timeout=25000")


def connect_args(role: str) -> dict:
    """psycopg connection arguments naming the process and keeping a dead peer's session short-lived."""
    return {"application_name": process_name(role), "options": SERVER_KEEPALIVES, **KEEPALIVES}


def conninfo(database_url: str | URL) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://...`` -> ``postgresql://...``)."""
    url = database_url if isinstance(database_url, URL) else make_url(normalize_database_url(database_url))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(database_url: str | URL, role: str = "worker") -> procrastinate.App:
    """The procrastinate app on ``database_url``, its connections named after ``role``; the tasks are imported
    with it, so any process of the cluster can defer and run them."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(database_url), kwargs=connect_args(role),
                                               min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    from .tasks import register_tasks  # the tasks use the queue's names: imported once both exist

    register_tasks(app)
    return app


@contextmanager
def setup_lock(engine: Engine) -> Iterator[psycopg.Connection]:
    """Held while one process of the cluster sets something up that several starting together would collide
    on (tables, feed rows): the others wait their turn, then find it done."""
    with psycopg.connect(conninfo(engine.url), autocommit=False) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        yield connection
        connection.commit()


def ensure_schema(engine: Engine) -> None:
    """Create procrastinate's tables and the staging table when absent, once however many processes start."""
    with setup_lock(engine) as connection:
        present = connection.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()[0]
        if not present:
            connection.execute(SchemaManager.get_schema())
        # A database made before the queue existed has no staging table yet (a new one got it with the others).
        PendingArticle.__table__.create(engine, checkfirst=True)
