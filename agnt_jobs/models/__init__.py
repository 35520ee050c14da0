"""Typed SQLAlchemy models, one module per domain. Importing this package registers
every table on ``Base.metadata``, which Alembic's autogenerate and check read."""

from agnt_jobs.models.base import Base
from agnt_jobs.models.runs import JobRun
from agnt_jobs.models.scheduling import ScheduleRecord, ScheduleTick, ScheduleWorker

__all__ = ["Base", "JobRun", "ScheduleRecord", "ScheduleTick", "ScheduleWorker"]
