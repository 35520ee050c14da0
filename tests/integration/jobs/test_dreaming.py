"""light_dreaming and deep_dreaming against a real Postgres: what a reflection and an
insight say about hand-made conversations, one per user per period however often or
however concurrently the jobs run, duplicate memories merged once, and the optional
LLM used when it answers and skipped, counted, when it fails."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.settings import Settings
from agnt_jobs.standins.llm import FakeLLM
from cron import dreaming
from tests.support import knowledge_data as data

TICK = data.LIGHT_TICK  # Tue 2026-11-24 02:00 WITA
DAY = date(2026, 11, 23)  # the WITA date that just ended

SUSHI_CHAT = [
    ("user", "Hi! I love sushi. Any good sushi place in Canggu?"),
    ("agent", "Sushi Tei in Canggu is popular, shall I book it?"),
    ("user", "Yes, book a sushi dinner for two on Friday. My wife is vegetarian."),
    ("agent", "Booked Sushi Tei for Friday 19:00. I'll check they have veggie rolls."),
    ("user", "Also remind me to bring the birthday voucher"),
]


def _reflections(engine: Engine) -> list[Any]:
    return data.rows(
        engine, "SELECT * FROM reflections ORDER BY user_id, reflection_date"
    )


def test_reflection_says_what_the_user_talked_about(
    engine: Engine, env: Settings
) -> None:
    ayu = data.user(engine, "Ayu")
    data.conversation(engine, ayu, SUSHI_CHAT, TICK - timedelta(hours=5), "c1")
    # Everybody else books tables for dinner tonight: those words are common.
    for i in range(3):
        data.message(
            engine,
            data.user(engine),
            f"Book a table for {i + 2} for dinner tonight on Friday please",
            TICK - timedelta(hours=2),
        )

    result = dreaming.light_dreaming(data.context(engine, env, TICK))

    assert result == {"date": "2026-11-23", "users": 4, "reflections_written": 4}
    reflection = _reflections(engine)[0]
    assert (reflection.user_id, reflection.reflection_date) == (ayu, DAY)
    assert reflection.topics[0] == "sushi"
    assert "canggu" in reflection.topics
    assert not {"dinner", "book", "friday", "two"} & set(reflection.topics)
    assert "I love sushi." in reflection.preferences
    assert any("vegetarian" in p for p in reflection.preferences)
    # The user had the last word (unanswered), and the agent promised a check.
    assert "Also remind me to bring the birthday voucher" in reflection.open_loops
    assert any("I'll check" in loop for loop in reflection.open_loops)
    assert reflection.interaction_count == 5
    assert reflection.method == "extractive"
    assert "sushi" in reflection.summary


def test_only_users_who_talked_in_the_24h_before_the_tick(
    engine: Engine, env: Settings
) -> None:
    at_start, before, at_tick, support = (data.user(engine) for _ in range(4))
    data.message(
        engine, at_start, "table for two at Mozaic", TICK - timedelta(hours=24)
    )
    data.message(engine, before, "table for two at Mozaic", TICK - timedelta(hours=25))
    data.message(engine, at_tick, "table for two at Mozaic", TICK)
    data.message(engine, support, "where is my refund?", TICK - timedelta(hours=1))

    result = dreaming.light_dreaming(data.context(engine, env, TICK))

    assert result["reflections_written"] == 2
    assert [r.user_id for r in _reflections(engine)] == [at_start, support]


def test_twice_or_after_a_crash_writes_each_reflection_once(
    engine: Engine, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [data.user(engine) for _ in range(3)]
    for i, user_id in enumerate(users):
        data.message(
            engine, user_id, f"book the spa number {i}", TICK - timedelta(hours=2)
        )
    real_reflect = dreaming.reflect
    calls = []

    def crash_on_third(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real_reflect(*args)

    monkeypatch.setattr(dreaming, "reflect", crash_on_third)
    ctx = data.context(engine, env, TICK + timedelta(hours=1), job_chunk_size=1)
    with pytest.raises(RuntimeError):
        dreaming.light_dreaming(ctx)
    done = _reflections(engine)
    assert [r.user_id for r in done] == users[:2]

    monkeypatch.setattr(dreaming, "reflect", real_reflect)
    assert dreaming.light_dreaming(ctx)["reflections_written"] == 1
    assert dreaming.light_dreaming(ctx)["reflections_written"] == 0
    after = _reflections(engine)
    assert [r.user_id for r in after] == users
    assert after[:2] == done  # the first two untouched


def test_two_runs_at_once_write_each_reflection_once(
    engine: Engine, env: Settings
) -> None:
    users = [data.user(engine) for _ in range(40)]
    for user_id in users:
        data.message(
            engine, user_id, "any rooftop bar in Seminyak?", TICK - timedelta(1)
        )
    ctx = data.context(engine, env, TICK, job_chunk_size=5)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(dreaming.light_dreaming(ctx)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r["reflections_written"] for r in results) == 40
    assert len(_reflections(engine)) == 40


def test_llm_summary_when_it_answers_extractive_when_it_fails(
    engine: Engine, env: Settings
) -> None:
    users = [data.user(engine) for _ in range(4)]
    for user_id in users:
        data.conversation(engine, user_id, SUSHI_CHAT, TICK - timedelta(hours=3), "c")
    llm = FakeLLM("Ayu loves sushi and has a Friday dinner booked.").start()
    try:
        llm_settings = {"llm_base_url": llm.base_url, "llm_model": "tiny"}
        first = data.context(engine, env, TICK, **llm_settings, job_chunk_size=2)
        ok = dreaming.light_dreaming(first)
        assert ok["llm_used"] == 4 and ok["llm_fallbacks"] == 0
        assert {r.method for r in _reflections(engine)} == {"llm"}
        assert _reflections(engine)[0].summary.startswith("Ayu loves sushi")
        assert "user: Hi! I love sushi." in llm.prompts[0]

        # Next night the model is down: after llm_max_failures (2) calls the run
        # stops calling it; every user still gets the extractive reflection.
        llm.failing_status = 503
        calls_before = len(llm.received)
        for user_id in users:
            data.conversation(
                engine, user_id, SUSHI_CHAT, TICK + timedelta(hours=2), "d"
            )
        down = data.context(
            engine, env, TICK + timedelta(days=1), **llm_settings, llm_max_failures=2
        )
        failed = dreaming.light_dreaming(down)
    finally:
        llm.stop()
    assert failed["reflections_written"] == 4
    assert failed["llm_used"] == 0 and failed["llm_fallbacks"] == 4
    assert len(llm.received) - calls_before == 2
    second_night = [r for r in _reflections(engine) if r.reflection_date > DAY]
    assert {r.method for r in second_night} == {"extractive"}
    assert all("sushi" in r.summary for r in second_night)


# --- deep dreaming -----------------------------------------------------------------

DEEP_TICK = data.DEEP_TICK  # Mon 2026-11-30 04:00 WITA: consolidates 2026-W48
MONDAY = date(2026, 11, 23)


def test_insight_consolidates_the_week_and_merges_duplicate_memories(
    engine: Engine, env: Settings
) -> None:
    ayu = data.user(engine, "Ayu")
    data.reflection(
        engine, ayu, MONDAY, ["sushi", "Canggu"], preferences=["I love sushi."]
    )
    data.reflection(
        engine,
        ayu,
        MONDAY + timedelta(2),
        ["spa", "sushi"],
        open_loops=["remind me to bring the voucher"],
    )
    data.reflection(
        engine, ayu, MONDAY - timedelta(1), ["karaoke"]
    )  # week 47: not this one
    in_week = datetime(2026, 11, 25, 4, tzinfo=UTC)
    long_ago = datetime(2026, 9, 1, tzinfo=UTC)
    old = data.memory(
        engine, ayu, "Allergic to peanuts", long_ago, last_accessed_at=long_ago
    )
    new_dup = data.memory(
        engine, ayu, "allergic to peanuts!", in_week, last_accessed_at=in_week
    )
    pinned_later = data.memory(
        engine, ayu, "Prefers window seats", in_week, kind="preference", pinned=True
    )
    earlier = data.memory(
        engine, ayu, "prefers window seats", long_ago, kind="preference"
    )
    other_kind = data.memory(engine, ayu, "Allergic to peanuts", in_week, kind="note")
    unrelated = data.memory(engine, ayu, "Has two kids", in_week)
    only_last_week = data.user(engine, "Budi")
    data.reflection(engine, only_last_week, MONDAY - timedelta(3), ["golf"])

    result = dreaming.deep_dreaming(data.context(engine, env, DEEP_TICK))

    assert result == {
        "week": "2026-W48",
        "users": 1,
        "insights_written": 1,
        "memories_merged": 2,
    }
    [insight] = data.rows(engine, "SELECT * FROM agent_insights")
    assert (insight.user_id, insight.iso_week, insight.week_start) == (
        ayu,
        "2026-W48",
        MONDAY,
    )
    assert insight.topics[0] == {"topic": "sushi", "days": 2}
    assert "karaoke" not in str(insight.topics)
    assert insight.preferences[0] == "I love sushi."
    assert "Prefers window seats" in insight.preferences
    assert insight.open_loops == ["remind me to bring the voucher"]
    assert insight.reflection_count == 2 and insight.memories_merged == 2
    assert "sushi (2d)" in insight.summary
    memories = {r.id: r for r in data.rows(engine, "SELECT * FROM memories")}
    assert memories[new_dup].merged_into_id == old
    assert memories[old].last_accessed_at == in_week  # the duplicate's later use
    assert memories[earlier].merged_into_id == pinned_later  # the pinned one stays
    for kept in (old, pinned_later, other_kind, unrelated):
        assert memories[kept].merged_into_id is None


def test_deep_dreaming_twice_writes_and_merges_once(
    engine: Engine, env: Settings
) -> None:
    users = [data.user(engine) for _ in range(5)]
    for user_id in users:
        data.reflection(engine, user_id, MONDAY + timedelta(1), ["brunch"])
        for _ in range(2):
            data.memory(
                engine,
                user_id,
                "Likes brunch in Ubud",
                datetime(2026, 11, 24, tzinfo=UTC),
            )
    ctx = data.context(engine, env, DEEP_TICK, job_chunk_size=2)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(dreaming.deep_dreaming(ctx)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    again = dreaming.deep_dreaming(ctx)

    assert sum(r["insights_written"] for r in results) == 5
    assert sum(r["memories_merged"] for r in results) == 5
    assert again["insights_written"] == 0 and again["memories_merged"] == 0
    merged = data.rows(
        engine, "SELECT count(*) AS n FROM memories WHERE merged_into_id IS NOT NULL"
    )
    assert merged[0].n == 5
