"""The machinery that runs the jobs: what a schedule declaration is
(``declaration``), the deploy that keeps the ``schedules`` table and the App's
periodic tasks in step with ``periodic/`` (``deploy``), misfire planning
(``misfire``), the deferrer that decides each tick once (``deferrer``), the worker
and App with their seams into Procrastinate (``worker``), job bodies as tasks
(``bodies``, ``tasks``), the run history (``history``), operator actions
(``control``), the job system's own maintenance jobs (``maintenance``) and
deferring a job in the caller's transaction (``defer``)."""
