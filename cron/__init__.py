"""Heavy nightly and weekly job bodies: dreaming, the graph builder, FAQ extraction
and compilation, and wiki reconciliation, with their text-analysis helpers. Importing
this package registers each body in ``agnt_jobs.scheduler.bodies.BODIES``."""

from cron import dreaming, faq_compile, graph_builder, wiki_reconcile

__all__ = ["dreaming", "faq_compile", "graph_builder", "wiki_reconcile"]
