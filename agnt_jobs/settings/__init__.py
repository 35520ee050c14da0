"""Every setting of agnt-jobs, read once from the environment (prefix ``AGNT_``).

Each field has the default an operator would choose for a single small deployment; a
production deployment sets at least ``AGNT_DATABASE_URL`` and ``INTERNAL_API_TOKEN``.
The fields are grouped by domain, one module each; ``docs/configuration.md`` is
generated from their descriptions (``agnt-jobs settings docs``).
"""

from __future__ import annotations

import functools

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agnt_jobs.errors import AgntJobsError
from agnt_jobs.settings.admin import AdminSettings
from agnt_jobs.settings.billing import BillingSettings
from agnt_jobs.settings.bookings import BookingSettings
from agnt_jobs.settings.database import DatabaseSettings
from agnt_jobs.settings.delivery import DeliverySettings
from agnt_jobs.settings.health import HealthSettings
from agnt_jobs.settings.intelligence import IntelligenceSettings
from agnt_jobs.settings.names import ENV_PREFIX, variable
from agnt_jobs.settings.retention import RetentionSettings
from agnt_jobs.settings.scheduling import SchedulingSettings
from agnt_jobs.settings.watchers import WatcherSettings
from agnt_jobs.settings.worker import WorkerSettings

__all__ = ["ENV_PREFIX", "GROUPS", "ConfigError", "Settings", "get_settings"]

# The groups in reading order, which is also the order their fields are validated
# in: a group's checks may read the fields of the groups before it (the watchers'
# batch check reads the delivery group's HTTP timeout).
GROUPS: tuple[type, ...] = (
    DatabaseSettings,
    WorkerSettings,
    SchedulingSettings,
    RetentionSettings,
    DeliverySettings,
    BookingSettings,
    BillingSettings,
    WatcherSettings,
    HealthSettings,
    IntelligenceSettings,
    AdminSettings,
)


class ConfigError(AgntJobsError):
    """A setting is missing or invalid; the message names the variable to fix."""


# Pydantic validates the fields of the last base first: the bases are GROUPS
# reversed (a test checks that the two lists agree).
class Settings(
    AdminSettings,
    IntelligenceSettings,
    HealthSettings,
    WatcherSettings,
    BillingSettings,
    BookingSettings,
    DeliverySettings,
    RetentionSettings,
    SchedulingSettings,
    WorkerSettings,
    DatabaseSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]).lower() if first["loc"] else "?"
    value = first.get("input")
    shown = "" if "token" in field or "url" in field else f"{value!r}: "
    return f"invalid setting {variable(field)}: {shown}{first['msg']}"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings; a bad value raises ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        message = _one_line(error)
    # Raised outside the handler so the error carries no context: the stock
    # procrastinate CLI prints every exception in a chain.
    raise ConfigError(message)
