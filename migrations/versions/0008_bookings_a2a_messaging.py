"""Bookings, A2A and messaging: A2A envelopes and venue responses, reminders,
rating prompts and ratings, re-engagement nudges, and the users' spend and nutrition
diaries with calorie goals. Core tables (bookings, send queue, dead letters) are 0003's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calorie_goals",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("daily_calories", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "daily_calories > 0", name=op.f("ck_calorie_goals_daily_calories")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_calorie_goals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calorie_goals")),
    )
    op.create_table(
        "nutrition_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("eaten_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("calories", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("calories >= 0", name=op.f("ck_nutrition_entries_calories")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_nutrition_entries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nutrition_entries")),
    )
    op.create_index(
        "ix_nutrition_entries_user_id_eaten_at",
        "nutrition_entries",
        ["user_id", "eaten_at"],
        unique=False,
    )
    op.create_table(
        "user_nudges",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("iso_week", sa.Text(), nullable=False),
        sa.Column(
            "nudged_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_nudges_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_nudges")),
        sa.UniqueConstraint(
            "user_id", "iso_week", name=op.f("uq_user_nudges_user_id_iso_week")
        ),
    )
    op.create_table(
        "user_spend_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_user_spend_entries_currency")
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_user_spend_entries_amount")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_spend_entries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_user_spend_entries_venue_id_venues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_spend_entries")),
    )
    op.create_index(
        "ix_user_spend_entries_user_id_spent_at",
        "user_spend_entries",
        ["user_id", "spent_at"],
        unique=False,
    )
    op.create_table(
        "a2a_envelopes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), server_default="booking_request", nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column(
            "attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('booking_request', 'booking_cancel')",
            name=op.f("ck_a2a_envelopes_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'DISPATCHED', 'DISPATCH_FAILED', 'DELIVERED', 'RESPONDED', 'EXPIRED')",
            name=op.f("ck_a2a_envelopes_status"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_a2a_envelopes_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_a2a_envelopes_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_a2a_envelopes")),
        sa.UniqueConstraint(
            "booking_id", "kind", name=op.f("uq_a2a_envelopes_booking_id_kind")
        ),
    )
    op.create_index(
        "ix_a2a_envelopes_dispatch_failed_next_attempt_at",
        "a2a_envelopes",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'DISPATCH_FAILED'"),
    )
    op.create_index(
        "ix_a2a_envelopes_pending_expires_at",
        "a2a_envelopes",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "rating_prompts",
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "prompted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_rating_prompts_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_rating_prompts")),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_ratings_score")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_ratings_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ratings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_ratings_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_ratings_booking_id")),
    )
    op.create_index("ix_ratings_user_id", "ratings", ["user_id"], unique=False)
    op.create_index(
        "ix_ratings_venue_id_created_at",
        "ratings",
        ["venue_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SENT', 'SKIPPED')", name=op.f("ck_reminders_status")
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_reminders_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_reminders_booking_id")),
    )
    op.create_index(
        "ix_reminders_pending_due_at",
        "reminders",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "venue_responses",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("envelope_id", sa.BigInteger(), nullable=True),
        sa.Column("booking_id", sa.BigInteger(), nullable=True),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.Text(), server_default="OPEN", nullable=False),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "decision IN ('ACCEPT', 'DECLINE')",
            name=op.f("ck_venue_responses_decision"),
        ),
        sa.CheckConstraint(
            "status IN ('OPEN', 'APPLIED', 'CLOSED')",
            name=op.f("ck_venue_responses_status"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_venue_responses_booking_id_bookings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["envelope_id"],
            ["a2a_envelopes.id"],
            name=op.f("fk_venue_responses_envelope_id_a2a_envelopes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_venue_responses_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venue_responses")),
    )
    op.create_index(
        "ix_venue_responses_booking_id", "venue_responses", ["booking_id"], unique=False
    )
    op.create_index(
        "ix_venue_responses_envelope_id",
        "venue_responses",
        ["envelope_id"],
        unique=False,
    )
    op.create_index(
        "ix_venue_responses_open_received_at",
        "venue_responses",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("status = 'OPEN'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_venue_responses_open_received_at",
        table_name="venue_responses",
        postgresql_where=sa.text("status = 'OPEN'"),
    )
    op.drop_index("ix_venue_responses_envelope_id", table_name="venue_responses")
    op.drop_index("ix_venue_responses_booking_id", table_name="venue_responses")
    op.drop_table("venue_responses")
    op.drop_index(
        "ix_reminders_pending_due_at",
        table_name="reminders",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_table("reminders")
    op.drop_index("ix_ratings_venue_id_created_at", table_name="ratings")
    op.drop_index("ix_ratings_user_id", table_name="ratings")
    op.drop_table("ratings")
    op.drop_table("rating_prompts")
    op.drop_index(
        "ix_a2a_envelopes_pending_expires_at",
        table_name="a2a_envelopes",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_index(
        "ix_a2a_envelopes_dispatch_failed_next_attempt_at",
        table_name="a2a_envelopes",
        postgresql_where=sa.text("status = 'DISPATCH_FAILED'"),
    )
    op.drop_table("a2a_envelopes")
    op.drop_index(
        "ix_user_spend_entries_user_id_spent_at", table_name="user_spend_entries"
    )
    op.drop_table("user_spend_entries")
    op.drop_table("user_nudges")
    op.drop_index(
        "ix_nutrition_entries_user_id_eaten_at", table_name="nutrition_entries"
    )
    op.drop_table("nutrition_entries")
    op.drop_table("calorie_goals")
