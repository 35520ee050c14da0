"""Rows per scale unit of the background every set-based data set shares: the demo
(``agnt-jobs demo seed --scale``) and the bench's fixture (``--scale``) are the same
size at the same scale, so a bench figure at scale 100 speaks of a table the size
of a scale-100 demo's.
"""

USERS_PER_SCALE = 2_000
VENUES_PER_SCALE = 40
BOOKINGS_PER_SCALE = 10_000
