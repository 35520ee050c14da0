"""Stand-ins for the outside world: local servers that answer the product's clients
(``agnt_jobs/clients``) as the real systems would, for the demo, the bench and the
tests. They import nothing of ours (an import-linter contract holds it).

Two transports, one set of answers:

* ``peer_server.PeerServer``: one child process (uvicorn) standing in for every peer
  at once, answering everything with success: the demo's and the benchmarks'.
  It runs apart so that it does not share the interpreter lock with the process
  being measured.
* ``server.LocalServer`` and its subclasses: one thread per peer in the test's
  process, which records what it received and can be told to fail, refuse, hold
  a request or go down: the tests'. ``gateway``, ``venue_agent``, ``ops`` (alerts,
  a signature-checking webhook receiver, the three marketplaces), ``llm``.

The marketplaces' response shapes are written once, in ``ops``, and both answer
with them. Stripe: ``localstripe`` (the PyPI server, as a child process, and the
objects the billing jobs' due work needs in it) and ``stripe_proxy`` (a proxy in
front of it adding pauses, idempotency keys and declines).
"""
