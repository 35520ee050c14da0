"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

__all__ = ["internal"]
