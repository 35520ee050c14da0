from __future__ import annotations

import pytest

from agnt_jobs import settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGNT_DATABASE_URL", raising=False)
    current = settings.get_settings()
    assert current.database_url is None
    assert current.worker_concurrency == 10
    assert current.business_timezone == "Asia/Makassar"


def test_internal_api_token_is_read_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNAL_API_TOKEN", "s3cret")
    token = settings.get_settings().internal_api_token
    assert token is not None
    assert token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings.get_settings())


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT_POOL_MAX_SIZE", "0")
    with pytest.raises(settings.ConfigError) as error:
        settings.get_settings()
    assert str(error.value) == (
        "invalid setting AGNT_POOL_MAX_SIZE: '0': "
        "Input should be greater than or equal to 1"
    )


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT_DATABASE_URL", "")
    monkeypatch.setenv("AGNT_LOG_FORMAT", "yaml")
    with pytest.raises(settings.ConfigError) as error:
        settings.get_settings()
    assert "AGNT_LOG_FORMAT" in str(error.value)


def test_redact_hides_the_password() -> None:
    from agnt_jobs.db import redact

    assert redact("postgresql://u:hunter2@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("postgresql://u@db/x") == "postgresql://u@db/x"
