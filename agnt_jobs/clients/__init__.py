"""One client per outside system, each with timeouts, a base URL from settings and
errors mapped to retryable or permanent (``agnt_jobs.clients.errors``)."""
