"""Stand-ins for the outside world: local servers that answer the product's clients
(``agnt_jobs/clients``) as the real systems would, for the demo, the bench and the
tests. They import nothing of ours (an import-linter contract holds it).

Every stand-in starts and stops, also as a ``with`` block (``base.StandIn``).
Two transports, one set of answers:

* ``peer_server.PeerServer``: one child process (``child``, uvicorn) standing in
  for every peer at once, answering everything with success: the demo's and the
  benchmarks'. It runs apart so that it does not share the interpreter lock with
  the process being measured.
* ``server.LocalServer`` and its subclasses: one thread per peer in the test's
  process, which records what it received and can be told to fail, refuse, hold
  a request or go down: the tests', and the bench's where it needs a peer of
  its own (a slow one). ``gateway``, ``venue_agent``, ``ops`` (alerts, a
  signature-checking webhook receiver, the three marketplaces), ``llm``.

The marketplaces' response shapes are written once, in ``marketplaces``, and both
transports answer with them. Stripe: ``localstripe`` (the PyPI server, as a child
process, and the objects the billing jobs' due work needs in it) and
``stripe_proxy`` (a proxy in front of it adding pauses, idempotency keys and
declines).
"""
