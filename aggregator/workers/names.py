"""What the processes sharing one PostgreSQL database agree on: their lock keys, the queue's name, how long a
worker may go without a heartbeat, and how each names itself. Nothing here needs procrastinate or psycopg, so
``aggregator status`` reads them on any install."""

from __future__ import annotations

import os
import socket

# session-level advisory locks: the one story sequencer, the one scheduler, and the queue's schema set-up
SEQUENCER_KEY = 0x61676773  # "aggs"
SCHEDULER_KEY = 0x61676774  # "aggt"
SCHEMA_LOCK_KEY = 0x61676775  # "aggu"
QUEUE = "aggregator"
STALLED_AFTER = 20.0  # seconds without a heartbeat before a worker's jobs are handed to another
APPLICATION_PREFIX = "aggregator "


def process_name(role: str) -> str:
    """How a process shows in pg_stat_activity.application_name: ``aggregator <role> <host>:<pid>``."""
    return f"{APPLICATION_PREFIX}{role} {socket.gethostname()}:{os.getpid()}"[:63]  # PostgreSQL keeps 63 bytes
