"""The schedule registry: one declaration per job (when it runs), nothing else.

``SCHEDULES`` are the 40 AGNT jobs (``schedules.py``); ``MAINTENANCE`` the job
system's own duties (``maintenance.py``). ``DECLARED`` is both, as deployed.
"""

from periodic.maintenance import MAINTENANCE
from periodic.schedules import SCHEDULES

DECLARED = SCHEDULES + MAINTENANCE

__all__ = ["DECLARED", "MAINTENANCE", "SCHEDULES"]
