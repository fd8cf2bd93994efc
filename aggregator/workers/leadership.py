"""One process at a time in a role, chosen by a PostgreSQL session-level advisory lock.

The lock lives as long as one dedicated connection: a holder that exits, is killed or loses its connection
frees it (PostgreSQL ends the session of a vanished peer through TCP keepalives, within about 25 s), and a
standby that asks again every few seconds takes the role over.
"""

from __future__ import annotations

import logging

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .names import SCHEDULER_KEY, SEQUENCER_KEY  # noqa: F401 - the roles' keys, importable beside Leadership
from .queue import connect_args

log = logging.getLogger("aggregator.cluster")



class Leadership:
    """Holds (or tries to hold) the advisory lock ``key`` for ``role`` on a connection of its own."""

    def __init__(self, engine: Engine, key: int, role: str):
        self.key = key
        self.role = role
        # Its own engine without a pool: the connection is the lock, and is never handed to anyone else.
        self._engine = create_engine(engine.url, poolclass=NullPool, connect_args=connect_args(role))
        self.connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self.connection is not None

    def try_acquire(self) -> bool:
        """Take the lock when it is free; True when this process holds it (now or already)."""
        if self.connection is not None:
            return True
        connection = None
        try:
            connection = self._engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            connection.commit()  # a session lock outlives the transaction that took it
        except DBAPIError as exc:
            log.warning("%s lock not asked for: database error: %s", self.role, exc.orig or exc)
            got = False
        if not got:
            if connection is not None:
                connection.close()
            return False
        self.connection = connection
        log.info("this process is now the %s", self.role)
        return True

    def alive(self) -> bool:
        """Whether the lock is still held: its connection answers. False (and released) when it does not."""
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.commit()
        except DBAPIError as exc:
            log.error("%s lock lost: database error: %s", self.role, exc.orig or exc)
            self.lost()
            return False
        return True

    def lost(self) -> None:
        """Forget a connection that failed: its session, and so the lock, is gone or going."""
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is discarded anyway
                pass

    def release(self) -> None:
        """Give the role up (closing the connection frees the lock)."""
        if self.connection is not None:
            try:
                self.connection.close()
            except DBAPIError:
                pass
            self.connection = None
            log.info("this process is no longer the %s", self.role)

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()
