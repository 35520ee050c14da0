"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 7: heavy jobs in cron/ ---
# isort: split
from cron import dreaming, faq_compile, graph_builder, wiki_reconcile

__all__ = [
    "dreaming",
    "faq_compile",
    "graph_builder",
    "internal",
    "wiki_reconcile",
]
