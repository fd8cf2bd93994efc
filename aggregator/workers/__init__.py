"""Several processes on one PostgreSQL database: fetch-and-extract workers fed by a job queue (procrastinate),
one story sequencer and one scheduler at a time, each chosen by a PostgreSQL advisory lock.

SQLite installations use none of it (one process does everything there), and import only ``names``: the
lock keys the store shares with it.
"""
