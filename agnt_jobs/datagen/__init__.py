"""The domain's data (users, venues, bookings, messages, billing...) as the demo, the
bench and the tests make it, and what they share.

Three makers stay, each for a need the others cannot meet without changing what
it is for:

* ``agnt_jobs/demo`` (``agnt-jobs demo seed``, ``make demo``): realistic. Values
  are drawn from distributions (hashed per row, so a scale and an instant give the
  same data every run), every table is filled, and each job finds a share of work
  that grows with the scale and overlaps with other jobs', as in production. It is
  what a person watches on the admin page.
* ``agnt_jobs/datagen/fixture*`` (the bench): arithmetic. Rows follow ``g``
  modulo small numbers, and the due work is ``due`` rows per job whatever the
  scale, each job's in a state no other job looks for, so that a figure measures
  one job's work at two table sizes. The demo's distributions would give each
  job a share that moves with the scale and with its neighbours, and changing
  this data changes every figure recorded so far.
* ``tests/support/rows.py`` and the domains' ``tests/support/*_data.py``: one row
  at a time with the values the test names, the hostile ones included (no
  address, opted out, deleted, past a window's edge by a second): the edge a test
  is about stays in its text, where a generated set would hide it.

What they share lives here: the rows per scale unit of the common background
(``sizes``, the demo's and the bench's), and the Stripe side of the billing jobs'
due work (``stripe_due``, made in localstripe for the demo and the bench alike).
The outside world they point the jobs at is ``agnt_jobs/standins``.
"""
