"""The admin view's door, and the logs every process writes."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator


class AdminSettings(BaseModel):
    internal_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERNAL_API_TOKEN", "AGNT_INTERNAL_API_TOKEN"),
        description="Token required by /admin/scheduler and /metrics, in "
        "X-Internal-Token or Authorization: Bearer; at least 32 characters. Unset: "
        "the admin view refuses every request.",
    )
    admin_port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port the admin view listens on: 'agnt-jobs admin' and "
        "'agnt-jobs worker --admin' (what make run starts, on 127.0.0.1).",
    )
    admin_session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 30,
        description="How long an admin page sign-in lasts; signing out ends it, "
        "changing INTERNAL_API_TOKEN ends every session at once.",
    )
    admin_refresh_seconds: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="How often the admin pages reload their content (the "
        "operator's filters kept; not while a form is being filled in).",
    )
    admin_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Wrong tokens (sign-ins or headers) one client address may send "
        "in a minute; past it, its sign-ins and token checks answer 429 with "
        "Retry-After until the minute is over.",
    )
    admin_trusted_proxies: str = Field(
        default="",
        validation_alias=AliasChoices(
            "AGNT_ADMIN_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS"
        ),
        description="Addresses or networks of the proxies in front of the admin "
        "view, comma-separated (e.g. 10.0.0.5,10.1.0.0/16); only from these are "
        "X-Forwarded-For and X-Forwarded-Proto believed ('*': from any). Empty: "
        "from none, so the client address is the connection's. 'agnt-jobs admin' "
        "and 'worker --admin'; uvicorn's FORWARDED_ALLOW_IPS is read as the same "
        "setting.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged: DEBUG, INFO, WARNING, ERROR."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json: one JSON object per line with action, job and fields "
        "(docs/logging.md); text: one short line for a person (time, level, job, "
        "message, fields); auto: text when stderr is a terminal, else json. The "
        "same for agnt-jobs and the stock procrastinate CLI.",
    )

    @field_validator("admin_trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        # One bad entry is a refusal, not a silently smaller list: an operator
        # who named a proxy expects it believed.
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":  # every address: only where nothing else can connect
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item[:64]!r} is not an address or network: give e.g. "
                    "10.0.0.5 or 10.1.0.0/16, comma-separated"
                ) from None
        return ",".join(items)

    def trusted_proxies(self) -> list[str]:
        """The proxies whose forwarded headers are believed (none by default)."""
        return [item for item in self.admin_trusted_proxies.split(",") if item]
