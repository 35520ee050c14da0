"""Heavy nightly and weekly job bodies: dreaming, the graph builder, FAQ
compilation and wiki reconciliation."""
