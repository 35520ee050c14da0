"""What the tests and the bench both need to run against real PostgreSQL: scratch
databases on a server (``scratch``), private clusters that can be stopped and
restarted (``cluster``), and a private PgBouncer in front of one (``pgbouncer``).

It ships because ``agnt-jobs bench`` ships and runs on these; the tests import it
from here rather than keeping a copy. Nothing in the product (the app, the jobs,
the worker) imports it: the import-linter layers keep it under the bench.
"""
