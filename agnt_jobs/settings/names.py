"""How a setting is named in the environment."""

from __future__ import annotations

ENV_PREFIX = "AGNT_"
# Settings that keep the name the platform already uses, without the prefix.
UNPREFIXED = {"internal_api_token": "INTERNAL_API_TOKEN"}


def variable(field: str) -> str:
    """The environment variable of a settings field."""
    return UNPREFIXED.get(field) or ENV_PREFIX + field.upper()
