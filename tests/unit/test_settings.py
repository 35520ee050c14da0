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


def test_claim_batches_default_to_eight_rounds_of_their_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    current = settings.get_settings()
    assert current.webhook_batch == 8 * current.webhook_concurrency == 64
    assert current.price_watcher_batch == 8 * current.marketplace_concurrency == 32
    # A low concurrency keeps a default batch that fits the lease, as before the
    # batch was a setting.
    monkeypatch.setenv("AGNT_WEBHOOK_CONCURRENCY", "1")
    monkeypatch.setenv("AGNT_MARKETPLACE_CONCURRENCY", "1")
    settings.get_settings.cache_clear()
    assert settings.get_settings().webhook_batch == 8
    assert settings.get_settings().price_watcher_batch == 8


@pytest.mark.parametrize(
    ("variable", "value", "lease"),
    [
        # 50 rounds of 8 deliveries, each up to the 10 s HTTP timeout: 500 s.
        ("AGNT_WEBHOOK_BATCH_SIZE", "400", "AGNT_WEBHOOK_CLAIM_SECONDS"),
        # 250 rounds of 4 fetches (2,500 s), started 2 a second (500 s).
        ("AGNT_PRICE_WATCHER_BATCH_SIZE", "1000", "AGNT_PRICE_WATCHER_CLAIM_SECONDS"),
    ],
)
def test_a_claim_batch_must_fit_in_its_lease(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, lease: str
) -> None:
    """A batch that could still be in flight when its lease ends would be claimed
    and sent again by another run."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.ConfigError) as error:
        settings.get_settings()
    assert str(error.value).startswith(f"invalid setting {variable}: '{value}': ")
    assert f"longer than its lease {lease}" in str(error.value)
    monkeypatch.setenv(lease, "3600")
    settings.get_settings.cache_clear()
    assert getattr(settings.get_settings(), variable[5:].lower()) == int(value)


@pytest.mark.parametrize(
    "variable", ["AGNT_WEBHOOK_BATCH_SIZE", "AGNT_PRICE_WATCHER_BATCH_SIZE"]
)
def test_a_claim_batch_takes_at_least_one_row(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "0")
    with pytest.raises(settings.ConfigError, match=variable):
        settings.get_settings()


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


def test_trusted_proxies_are_none_by_default_and_addresses_or_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGNT_ADMIN_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert settings.get_settings().trusted_proxies() == []
    monkeypatch.setenv("AGNT_ADMIN_TRUSTED_PROXIES", " 10.0.0.5, 10.1.0.0/16 ,::1")
    settings.get_settings.cache_clear()
    assert settings.get_settings().trusted_proxies() == [
        "10.0.0.5",
        "10.1.0.0/16",
        "::1",
    ]
    # uvicorn's own variable, as an operator may have set it, means the same.
    monkeypatch.delenv("AGNT_ADMIN_TRUSTED_PROXIES")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    settings.get_settings.cache_clear()
    assert settings.get_settings().trusted_proxies() == ["*"]
    monkeypatch.setenv("AGNT_ADMIN_TRUSTED_PROXIES", "10.0.0.5,proxy.internal")
    settings.get_settings.cache_clear()
    with pytest.raises(settings.ConfigError) as error:
        settings.get_settings()
    assert str(error.value).startswith(
        "invalid setting AGNT_ADMIN_TRUSTED_PROXIES: '10.0.0.5,proxy.internal': "
        "Value error, 'proxy.internal' is not an address or network"
    )
