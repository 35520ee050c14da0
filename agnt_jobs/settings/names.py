"""How a setting is named in the environment."""

from __future__ import annotations

ENV_PREFIX = "AGNT_"
# Settings that keep the name the platform already uses, without the prefix.
UNPREFIXED = {"internal_api_token": "INTERNAL_API_TOKEN"}


def variable(field: str) -> str:
    """The environment variable of a settings field."""
    name = field.upper()
    # A field read under aliases is reported under its first, already prefixed.
    prefixed = name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name
    return UNPREFIXED.get(field) or prefixed
