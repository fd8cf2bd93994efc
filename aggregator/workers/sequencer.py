"""The story sequencer: the one process that decides duplicates and stories, in the order articles arrived.

Workers stage what they extracted in ``pending_article``; the process holding the sequencer lock reads those rows
in ``id`` order, stores them through :meth:`Ingestor.ingest_batch` and deletes them, all in one transaction on
the lock's own connection. Losing the lock is losing that connection, which aborts the transaction, so a new
sequencer never sees half a batch, and no two writers interleave. A standby asks for the lock every few
seconds and, once it holds it, rebuilds its engine from the database.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from ..config import Config
from ..ingest import Incoming, Ingestor, settings_for
from ..models import PendingArticle
from ..pipeline import WRITE_BATCH
from ..scheduler import maintain
from .leadership import SEQUENCER_KEY, Leadership

log = logging.getLogger("aggregator.sequencer")

STANDBY_RETRY = 5.0  # seconds between a standby's asks for the lock
IDLE_WAIT = 0.5  # seconds between looks at an empty staging table
MAINTENANCE_EVERY = 3600.0
_PENDING = PendingArticle.__table__
_INCOMING_FIELDS = [name for name in Incoming.__dataclass_fields__]


def incoming_of(row) -> Incoming:
    """The article a staging row holds, as the ingestor takes it."""
    return Incoming(**{name: getattr(row, name) for name in _INCOMING_FIELDS})


class Sequencer:
    """Leader or standby for the sequencer role; :meth:`run` until ``stop`` is set (it runs in a thread of its
    own, all its work synchronous)."""

    def __init__(self, engine: Engine, config: Config, leadership: Leadership | None = None):
        self.engine = engine
        self.config = config
        self.leadership = leadership or Leadership(engine, SEQUENCER_KEY, "sequencer")
        self.ingestor: Ingestor | None = None
        self.sequenced = 0  # articles this process has taken from the staging table
        self._maintained = time.monotonic()
        self._isolating = 0  # after a failed batch, its rows are taken one at a time to find the one at fault
        self._unstorable: set[int] = set()  # staged rows the engine failed on alone, passed over

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    leading = self.lead()
                except Exception:  # a bug or a lost pool: logged, and the lock is asked for again
                    log.exception("sequencer could not take the lead")
                    self._step_down()
                    leading = False
                if not leading:
                    stop.wait(STANDBY_RETRY)
                    continue
                try:
                    taken = self.drain_once()
                except DBAPIError as exc:
                    log.error("sequencer stopped: database error: %s (asking for the lock again)", exc.orig or exc)
                    self._step_down()
                    stop.wait(STANDBY_RETRY)
                    continue
                except Exception:  # a bug: logged, and the batch is tried again (it was rolled back)
                    log.exception("sequencer batch failed")
                    stop.wait(STANDBY_RETRY)
                    continue
                try:
                    self._maintain_when_due()
                except Exception:  # a bug: logged, the sequencing goes on and maintenance runs next hour
                    log.exception("maintenance failed")
                if not taken:
                    stop.wait(IDLE_WAIT)
        finally:
            self.leadership.dispose()

    def lead(self) -> bool:
        """Hold the lock with an engine loaded from the database: True when this process is the sequencer."""
        if self.ingestor is not None and self.leadership.held:
            return True
        if not self.leadership.try_acquire():
            return False
        settings = self.config.settings
        started = time.monotonic()
        try:
            ingestor = Ingestor(self.engine, settings_for(settings.story_window, settings.semantic_clustering),
                                settings.preferred_sources)
            ingestor.reload()
        except DBAPIError as exc:
            log.error("sequencer engine not loaded: database error: %s", exc.orig or exc)
            self._step_down()
            return False
        self.ingestor = ingestor
        log.info("sequencer engine loaded with %d open articles in %.1fs", ingestor.loaded, time.monotonic() - started)
        return True

    def _step_down(self) -> None:
        self.leadership.lost()
        self.ingestor = None  # whatever it decided in a batch that did not commit is not in the database

    def drain_once(self, limit: int = WRITE_BATCH) -> int:
        """Store up to ``limit`` staged articles, oldest staged first, in one transaction; how many were taken."""
        connection = self.leadership.connection
        if connection.invalidated:  # its next use would open a new session, one that does not hold the lock
            self._step_down()
            return 0
        if connection.in_transaction():
            connection.commit()
        pending = select(_PENDING).order_by(_PENDING.c.id).limit(1 if self._isolating else limit)
        if self._unstorable:
            pending = pending.where(_PENDING.c.id.not_in(self._unstorable))
        with Session(bind=connection) as session:
            rows = session.execute(pending).all()
            if not rows:
                session.commit()
                return 0
            try:
                self.ingestor.ingest_batch(session, [incoming_of(row) for row in rows])
                session.execute(delete(_PENDING).where(_PENDING.c.id.in_([row.id for row in rows])))
                session.commit()
            except DBAPIError:
                session.rollback()
                raise
            except Exception:
                session.rollback()
                self.ingestor.reload()  # the engine counted the batch: back in step with what was committed
                if len(rows) > 1:  # find the row at fault: the batch's rows go one at a time
                    self._isolating = len(rows)
                    raise
                # One article the engine cannot take must not hold up those staged after it: it stays staged
                # (status shows its age), and this sequencer passes over it until it restarts.
                self._unstorable.add(rows[0].id)
                log.exception("staged article %s/%s (row %d) cannot be stored: left in the staging table",
                              rows[0].source_key, rows[0].external_id, rows[0].id)
                return 0
        self._isolating = max(0, self._isolating - 1)
        self.sequenced += len(rows)
        return len(rows)

    def _maintain_when_due(self) -> None:
        """Close the stories that left the window (what the single-process daemon's hourly job does)."""
        if time.monotonic() - self._maintained < MAINTENANCE_EVERY:
            return
        self._maintained = time.monotonic()
        try:
            closed = maintain(self.engine, self.config)
        except DBAPIError as exc:
            log.error("maintenance failed: database error: %s (will retry in an hour)", exc.orig or exc)
            return
        self.ingestor.clusterer.expire()
        if closed:
            log.info("maintenance: closed %d stories", closed)


def staging_depth(engine: Engine) -> int:
    """How many articles wait for the sequencer."""
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(_PENDING)).scalar_one()
