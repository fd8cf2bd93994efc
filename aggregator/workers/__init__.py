"""Work spread over processes and machines on PostgreSQL: job queue, workers, sequencer, leadership, status."""
