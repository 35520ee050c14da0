"""When each of the 40 AGNT jobs runs: the seed's 39 rows plus ``wiki_reconcile``.

Data only. Crons are Asia/Makassar (WITA) wall-clock time exactly as the seed writes
them; the seed's intervals are aligned crons (1h = at :00, 6h = 00/06/12/18 WITA).
Descriptions are the seed's purpose wording.

Misfire policy, the rule we applied per job (each line says why):
- ``skip`` (the default) for interval jobs and for housekeeping that sweeps current
  state: the next run does everything a missed one would have.
- ``catch_up`` (within the catch-up grace window, 24h by default) for jobs whose tick
  names a period of work (a day, an ISO week, a month) or whose absence for a whole
  day or week hurts users or money.
"""

from __future__ import annotations

from datetime import timedelta

from agnt_jobs.scheduler.declaration import Misfire, Schedule

CATCH_UP = Misfire.CATCH_UP
# Long, analysis-heavy jobs run on their own queue so a worker started with
# ``-q heavy`` can take them away from the minute-level jobs.
HEAVY = "heavy"
# They read weeks of conversations or every watched product: more than the default
# half hour a run may take before it is stopped at its next checkpoint.
HEAVY_TIMEOUT = timedelta(hours=2)

BOOKINGS = (
    Schedule(
        "booking_reminders",
        "0 * * * *",
        "Send upcoming-booking reminders to users.",
    ),
    Schedule(
        "deliver_reminders",
        "*/5 * * * *",
        "Deliver due reminders via the channel sender.",
    ),
    Schedule(
        "auto_confirm_stale_bookings",
        "0 * * * *",
        "Auto-confirm bookings venues forgot to accept.",
    ),
    Schedule(
        "mark_completed_bookings",
        "0 * * * *",
        "Transition past-slot bookings to COMPLETED.",
    ),
    Schedule(
        "rating_prompt",
        "0 * * * *",
        "Prompt users to rate recent bookings.",
    ),
)

A2A = (
    Schedule(
        "recover_stuck_bookings",
        "*/15 * * * *",
        "Unstick bookings caught between A2A states.",
    ),
    Schedule(
        "cancel_orphaned_bookings",
        "*/30 * * * *",
        "Cancel bookings whose envelope has been abandoned.",
    ),
    Schedule(
        "reap_stale_envelopes",
        "*/15 * * * *",
        "Mark PENDING envelopes past TTL as EXPIRED.",
    ),
    Schedule(
        "sweep_orphaned_responses",
        "*/30 * * * *",
        "Close out venue responses with no matching booking.",
    ),
    Schedule(
        "retry_dispatch_failed",
        "*/30 * * * *",
        "Re-dispatch envelopes stuck in DISPATCH_FAILED.",
    ),
)

MESSAGING = (
    Schedule(
        "retry_failed_sends",
        "* * * * *",
        "Retry outbound messages in the send queue.",
    ),
    # catch_up: one nudge per user per ISO week; skipping the Monday tick would
    # skip a whole week's nudges.
    Schedule(
        "re_engagement",
        "0 10 * * 1",
        "Weekly re-engagement nudge to lapsed users.",
        CATCH_UP,
    ),
    # catch_up: owners plan tomorrow from tonight's summary; a late one still helps.
    Schedule(
        "venue_daily_summary",
        "0 22 * * *",
        "Evening ops summary for every venue owner.",
        CATCH_UP,
    ),
    # catch_up: the digest covers yesterday (from the tick), so a late run sends
    # the same, still useful, digest.
    Schedule(
        "spend_digest",
        "0 9 * * *",
        "Send daily user-spend digest.",
        CATCH_UP,
    ),
    # skip: "today's calories" arriving after midnight is noise, not help.
    Schedule(
        "daily_nutrition_summary",
        "0 21 * * *",
        "Send users their calorie diary summary.",
    ),
)

BILLING = (
    # catch_up: a month's invoices; missing the tick loses a month of revenue.
    Schedule(
        "monthly_invoice",
        "0 9 1 * *",
        "Generate monthly subscription invoices.",
        CATCH_UP,
    ),
    Schedule(
        "retry_pending_fees",
        "*/30 * * * *",
        "Retry Stripe fee collections that failed.",
    ),
    # catch_up: a day of drift between us and Stripe grants or denies access wrongly.
    Schedule(
        "reconcile_subscription_state",
        "0 5 * * *",
        "Reconcile local subscription rows with Stripe state.",
        CATCH_UP,
    ),
    # skip, although a reconciliation: each run compares the recently changed fees
    # (the first run of each WITA day, all of them), so replaying 48 missed
    # half-hourly runs would repeat one run's work 48 times.
    Schedule(
        "reconcile_fee_status",
        "*/30 * * * *",
        "Reconcile fee collection statuses against the ledger.",
    ),
    # catch_up: usage is billed up to the tick's cutoff; a missed day is revenue.
    Schedule(
        "charge_unbilled_usage",
        "0 5 * * *",
        "Batch metered ApiKeyUsageEvent rows to Stripe.",
        CATCH_UP,
    ),
    # catch_up: a missed reset leaves every key at yesterday's count, throttling
    # customers all day.
    Schedule(
        "reset_api_key_queries_today",
        "0 8 * * *",
        "Reset the per-API-key daily query counter.",
        CATCH_UP,
    ),
)

LIFECYCLE = (
    Schedule(
        "purge_deleted_users",
        "0 4 * * *",
        "Hard-delete users past the retention window.",
    ),
    Schedule(
        "b2b_session_cleanup",
        "0 3 * * *",
        "Purge expired B2B onboarding sessions.",
    ),
    Schedule(
        "mark_abandoned_b2b_sessions",
        "30 3 * * *",
        "Mark half-finished B2B onboarding flows as abandoned.",
    ),
    # catch_up: otherwise an expired code stays redeemable for another day.
    Schedule(
        "expire_stale_referrals",
        "0 6 * * *",
        "Expire unredeemed referral codes past their TTL.",
        CATCH_UP,
    ),
    # catch_up: wrong is_active/is_claimed flags are visible to users all day.
    Schedule(
        "reconcile_venue_compound_state",
        "0 4 * * *",
        "Reconcile venue compound state (is_active, is_claimed, etc).",
        CATCH_UP,
    ),
)

PLATFORM = (
    Schedule(
        "platform_health_monitor",
        "*/15 * * * *",
        "Run platform health checks and emit alerts on regression.",
    ),
    Schedule(
        "drain_webhook_retries",
        "*/2 * * * *",
        "Retry failed outbound webhook deliveries.",
    ),
    Schedule(
        "check_price_watchers",
        "0 */6 * * *",
        "Refresh price watchers on Shopee/Tokopedia/Lazada products.",
        queue=HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
    Schedule(
        "dlq_cleanup",
        "15 2 * * *",
        "Trim the dead-letter queue of processed failures.",
    ),
    # catch_up: once per ISO week; a skipped Monday means no report for a week.
    Schedule(
        "dlq_weekly_report",
        "0 6 * * 1",
        "Weekly DLQ health report to the alerts channel.",
        CATCH_UP,
    ),
    Schedule(
        "prune_error_logs",
        "30 5 * * *",
        "Delete ErrorLog rows past the retention window.",
    ),
)

INTELLIGENCE = (
    # catch_up: reflects on the 24h before its tick; a skipped night is never
    # reflected on.
    Schedule(
        "light_dreaming",
        "0 2 * * *",
        "Lightweight nightly reflection over recent interactions.",
        CATCH_UP,
        HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
    # catch_up: one run's output per user per ISO week.
    Schedule(
        "deep_dreaming",
        "0 4 * * 1",
        "Weekly deep reflection producing new agent insights.",
        CATCH_UP,
        HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
    Schedule(
        "memory_eviction",
        "30 3 * * *",
        "Evict stale user memory entries past the keep window.",
    ),
    # catch_up: extracts the week that ends at its tick.
    Schedule(
        "faq_extraction",
        "59 23 * * 0",
        "Extract FAQ candidates from the week's conversations.",
        CATCH_UP,
        HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
    # catch_up: weekly; a skipped Sunday leaves the drafts a week behind.
    Schedule(
        "faq_compilation",
        "0 3 * * 0",
        "Cluster support conversations into draft FAQ entries.",
        CATCH_UP,
        HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
    Schedule(
        "rebuild_entity_graph",
        "0 * * * *",
        "Rebuild derived edges in the knowledge graph.",
        queue=HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
)

FLEET = (
    # skip: moves everything older than the current ISO week, so next week's run
    # does what a missed one would have.
    Schedule(
        "rotate_delta_log",
        "30 4 * * 0",
        "Rotate the fleet delta log.",
    ),
    # Our decision: the seed names cron/wiki_reconcile.py but gives it no row. Weekly
    # on Sunday 05:00 WITA, after rotate_delta_log (04:30). catch_up: a skipped
    # week leaves the wiki a week stale.
    Schedule(
        "wiki_reconcile",
        "0 5 * * 0",
        "Fleet wiki reconciliation: bring the fleet wiki pages in line with the "
        "fleet delta log.",
        CATCH_UP,
        HEAVY,
        timeout=HEAVY_TIMEOUT,
    ),
)

SCHEDULES: tuple[Schedule, ...] = (
    *BOOKINGS,
    *A2A,
    *MESSAGING,
    *BILLING,
    *LIFECYCLE,
    *PLATFORM,
    *INTELLIGENCE,
    *FLEET,
)
