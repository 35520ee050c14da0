"""The marketplaces' product APIs and how price watchers are checked against them."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from agnt_jobs.settings.delivery import fits_lease


class WatcherSettings(BaseModel):
    shopee_base_url: str = Field(
        default="https://shopee.co.id", description="Base URL of Shopee's item API."
    )
    tokopedia_base_url: str = Field(
        default="https://gql.tokopedia.com",
        description="Base URL of Tokopedia's GraphQL API.",
    )
    lazada_base_url: str = Field(
        default="https://www.lazada.co.id",
        description="Base URL of Lazada's product detail API.",
    )
    marketplace_concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight per marketplace."
    )
    marketplace_rate_per_second: float = Field(
        default=2.0, gt=0, description="Requests per second per marketplace host."
    )
    marketplace_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive retryable failures after which a run stops calling "
        "a marketplace (its remaining watchers wait for the next run).",
    )
    price_watcher_claim_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a run holds a claimed watcher; a crashed run's "
        "watchers are checked again after it.",
    )
    price_watcher_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Watchers of one marketplace a run claims at a time (default 8 "
        "x AGNT_MARKETPLACE_CONCURRENCY); they are fetched AGNT_MARKETPLACE_"
        "CONCURRENCY at once and recorded in one transaction. A batch must be "
        "fetched within its lease.",
    )

    @property
    def price_watcher_batch(self) -> int:
        """Watchers of one marketplace a run claims at a time."""
        return self.price_watcher_batch_size or 8 * self.marketplace_concurrency

    # A claimed batch is held under a lease. If the slowest batch (every request
    # taking the whole HTTP timeout, the marketplace rate limit spacing their
    # starts) could outlast it, another run would claim and send the same rows.
    @field_validator("price_watcher_batch_size")
    @classmethod
    def _watcher_batch_fits_its_lease(
        cls, value: int | None, info: ValidationInfo
    ) -> int | None:
        if value is None:
            return None  # eight rounds of the concurrency, whatever it is
        return fits_lease(
            value,
            info.data,
            "marketplace_concurrency",
            "price_watcher_claim_seconds",
            rate="marketplace_rate_per_second",
        )
