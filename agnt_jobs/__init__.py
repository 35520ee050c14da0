"""agnt-jobs: the AGNT platform's scheduled jobs on a Postgres queue (Procrastinate)."""

__version__ = "0.1.0"
