"""The heavy jobs in cron/: dreaming, FAQ extraction and compilation, wiki
reconciliation, and the optional LLM."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class IntelligenceSettings(BaseModel):
    light_dreaming_window_hours: float = Field(
        default=24.0,
        gt=0,
        description="light_dreaming reads the interactions of "
        "this many hours before its tick.",
    )
    dreaming_max_messages_per_user: int = Field(
        default=200,
        ge=1,
        description="Most recent messages of one user a "
        "reflection reads (bounds memory and LLM prompt size).",
    )
    reflection_max_topics: int = Field(
        default=5, ge=1, description="Topics kept in a reflection or an insight."
    )
    memory_merge_similarity: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="deep_dreaming merges two memories "
        "of a user whose TF-IDF cosine similarity reaches this.",
    )
    deep_dreaming_max_memories_per_user: int = Field(
        default=2000,
        ge=1,
        description="Most recent live memories of one user "
        "deep_dreaming compares for duplicates.",
    )
    faq_extraction_window_days: float = Field(
        default=7.0,
        gt=0,
        description="faq_extraction reads the support messages "
        "of this many days before its tick.",
    )
    faq_compile_window_days: float = Field(
        default=90.0,
        gt=0,
        description="faq_compilation clusters the candidates "
        "asked within this many days before its tick.",
    )
    faq_cluster_similarity: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A question joins a cluster when its "
        "TF-IDF cosine similarity to the cluster's first question reaches this.",
    )
    faq_min_cluster_size: int = Field(
        default=2,
        ge=1,
        description="Times a cluster's questions must have been "
        "asked for it to become a draft FAQ entry.",
    )
    faq_max_answers_per_cluster: int = Field(
        default=20,
        ge=1,
        description="Most recent agent answers compared to pick a draft's best answer.",
    )
    wiki_delta_settle_seconds: float = Field(
        default=300.0,
        ge=0,
        description="wiki_reconcile leaves delta-log entries "
        "younger than this for its next run, so a late-committing writer is never "
        "skipped.",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API base (…/v1). Unset: the "
        "heavy jobs use their deterministic text method only.",
    )
    llm_model: str | None = Field(default=None, description="Model name for the LLM.")
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the LLM API."
    )
    llm_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one LLM call."
    )
    llm_max_failures: int = Field(
        default=3,
        ge=1,
        description="Failed LLM calls after which a run stops "
        "calling it and uses the deterministic method for the rest.",
    )
