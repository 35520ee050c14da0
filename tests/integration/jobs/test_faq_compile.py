"""faq_extraction and faq_compilation against a real Postgres: the questions users
asked support become deduplicated candidates; similar ones (and only those) land in
one draft entry with the most typical answer; re-runs, crashes and concurrent runs
change nothing twice; the optional LLM writes the answer or is fallen back from."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.settings import Settings
from agnt_jobs.standins.llm import FakeLLM
from cron import faq_compile
from tests.support import knowledge_data as data

EXTRACT_TICK = datetime(2026, 11, 29, 15, 59, tzinfo=UTC)  # Sun 23:59 WITA
COMPILE_TICK = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)  # next Sun 03:00 WITA
DURING_WEEK = EXTRACT_TICK - timedelta(days=3)

CANCEL_1 = [
    ("user", "Hi. How do I cancel my booking?"),
    ("agent", "Open the booking in the app and tap Cancel booking."),
]
CANCEL_2 = [
    ("user", "How can I cancel a booking I made? Thanks"),
    ("agent", "You can cancel the booking in the app under My bookings."),
]
CANCEL_3 = [
    ("user", "how do I cancel my booking??"),
    ("agent", "Tap Cancel on the booking in the app, free until 2h before."),
]
SPA = [
    ("user", "What time does the spa open on Sunday?"),
    ("agent", "The spa opens at 9am on Sundays."),
]


def _support_week(engine: Engine) -> dict[str, int]:
    """Four support chats (three about cancelling) plus what must be ignored."""
    users = {name: data.user(engine, name) for name in ("a", "b", "c", "d")}
    for i, (name, chat) in enumerate(
        [("a", CANCEL_1), ("b", CANCEL_2), ("c", SPA), ("d", CANCEL_3)]
    ):
        data.conversation(
            engine, users[name], chat, DURING_WEEK + timedelta(hours=i), name, True
        )
    # Not a support chat; an agent's question; too old; not a question.
    data.message(engine, users["a"], "How do I cancel my booking?", DURING_WEEK)
    data.message(
        engine,
        users["b"],
        "Can I help with anything else?",
        DURING_WEEK,
        "agent",
        "b",
        True,
    )
    data.message(
        engine,
        users["c"],
        "Do you sell gift cards?",
        EXTRACT_TICK - timedelta(days=8),
        support=True,
    )
    data.message(engine, users["d"], "Great, thanks a lot", DURING_WEEK, support=True)
    return users


def _candidates(engine: Engine) -> list[Any]:
    return data.rows(engine, "SELECT * FROM faq_candidates ORDER BY id")


def _drafts(engine: Engine) -> list[Any]:
    return data.rows(engine, "SELECT * FROM faq_drafts ORDER BY id")


def test_extraction_dedupes_support_questions_by_normalised_text(
    engine: Engine, env: Settings
) -> None:
    _support_week(engine)

    result = faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))

    assert result == {
        "messages_scanned": 5,
        "questions_found": 4,
        "candidates_created": 3,
        "candidates_updated": 0,
    }
    cancel, made, spa = _candidates(engine)
    assert (cancel.normalized_text, cancel.text) == (
        "how do i cancel my booking",
        "How do I cancel my booking?",
    )
    assert len(cancel.source_message_ids) == 2
    assert made.normalized_text == "how can i cancel a booking i made"
    assert spa.normalized_text == "what time does the spa open on sunday"
    assert cancel.first_seen_at < cancel.last_seen_at

    again = faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))
    assert again["candidates_created"] == again["candidates_updated"] == 0
    assert _candidates(engine) == [cancel, made, spa]


def test_extraction_crash_then_rerun_and_concurrent_runs(
    engine: Engine, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _support_week(engine)
    real = faq_compile.questions
    seen: list[str] = []

    def crash_on_third(text: str) -> list[str]:
        seen.append(text)
        if len(seen) == 3:
            raise RuntimeError("worker killed")
        return real(text)

    monkeypatch.setattr(faq_compile, "questions", crash_on_third)
    ctx = data.context(engine, env, EXTRACT_TICK, job_chunk_size=1)
    with pytest.raises(RuntimeError):
        faq_compile.faq_extraction(ctx)
    assert len(_candidates(engine)) == 1  # chunks before the crash are kept
    monkeypatch.setattr(faq_compile, "questions", real)

    threads = [
        threading.Thread(target=faq_compile.faq_extraction, args=(ctx,))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [
        (c.normalized_text, len(c.source_message_ids)) for c in _candidates(engine)
    ] == [
        ("how do i cancel my booking", 2),
        ("how can i cancel a booking i made", 1),
        ("what time does the spa open on sunday", 1),
    ]


def test_similar_questions_make_one_draft_the_unrelated_one_none(
    engine: Engine, env: Settings
) -> None:
    _support_week(engine)
    faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))
    cancel, made, _spa = _candidates(engine)

    result = faq_compile.faq_compilation(data.context(engine, env, COMPILE_TICK))

    assert result == {
        "candidates": 3,
        "clusters": 2,
        "drafts_created": 1,
        "drafts_updated": 0,
        "drafts_unchanged": 0,
        "drafts_retired": 0,
        "drafts_without_answer": 0,
    }
    [draft] = _drafts(engine)
    assert draft.anchor_candidate_id == cancel.id
    assert draft.question == "How do I cancel my booking?"  # the most asked wording
    assert draft.candidate_ids == [cancel.id, made.id]
    assert draft.cluster_size == 3
    assert draft.source_message_ids == sorted(
        cancel.source_message_ids + made.source_message_ids
    )
    assert draft.answer in {turns[1][1] for turns in (CANCEL_1, CANCEL_2, CANCEL_3)}
    assert draft.answer_method == "extractive"
    assert "spa" not in draft.answer

    again = faq_compile.faq_compilation(data.context(engine, env, COMPILE_TICK))
    assert again["drafts_unchanged"] == 1 and again["drafts_created"] == 0
    assert _drafts(engine) == [draft]


def test_new_questions_update_drafts_in_place_and_gone_clusters_retire(
    engine: Engine, env: Settings
) -> None:
    users = _support_week(engine)
    faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))
    faq_compile.faq_compilation(data.context(engine, env, COMPILE_TICK))
    [before] = _drafts(engine)

    next_week = EXTRACT_TICK + timedelta(days=7)
    data.conversation(
        engine,
        users["a"],
        [("user", "How to cancel my bookings?")],
        next_week - timedelta(days=1),
        "e",
        True,
    )
    data.conversation(
        engine,
        users["b"],
        [("user", "When does the spa open on Sunday?")],
        next_week - timedelta(days=1),
        "f",
        True,
    )
    faq_compile.faq_extraction(data.context(engine, env, next_week))
    result = faq_compile.faq_compilation(
        data.context(engine, env, COMPILE_TICK + timedelta(days=7))
    )

    assert (result["drafts_created"], result["drafts_updated"]) == (1, 1)
    cancel, spa = _drafts(engine)
    assert cancel.id == before.id and cancel.cluster_size == 4
    assert spa.cluster_size == 2 and "spa" in spa.question

    # Months later nobody asked them any more: both retire, neither is deleted.
    later = data.context(engine, env, COMPILE_TICK + timedelta(days=200))
    assert faq_compile.faq_compilation(later)["drafts_retired"] == 2
    assert all(d.retired_at is not None for d in _drafts(engine))


def test_llm_writes_the_answer_and_its_failure_falls_back(
    engine: Engine, env: Settings
) -> None:
    _support_week(engine)
    faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))
    llm = FakeLLM("Cancel in the app under My bookings; it is free until 2h before.")
    llm.start()
    try:
        settings = {"llm_base_url": llm.base_url, "llm_model": "tiny"}
        ok = faq_compile.faq_compilation(
            data.context(engine, env, COMPILE_TICK, **settings)
        )
        [draft] = _drafts(engine)
        assert (ok["llm_used"], ok["llm_fallbacks"]) == (1, 0)
        assert draft.answer_method == "llm" and draft.answer.startswith("Cancel in")
        assert "Question: How do I cancel my booking?" in llm.prompts[0]
        assert "Open the booking in the app" in llm.prompts[0]

        llm.failing_status = 500
        down = faq_compile.faq_compilation(
            data.context(engine, env, COMPILE_TICK, **settings)
        )
    finally:
        llm.stop()
    assert (down["llm_used"], down["llm_fallbacks"]) == (0, 1)
    assert down["drafts_updated"] == 1
    [draft] = _drafts(engine)
    assert draft.answer_method == "extractive"
    assert draft.answer in {turns[1][1] for turns in (CANCEL_1, CANCEL_2, CANCEL_3)}


def test_two_compilations_at_once_keep_one_draft_per_cluster(
    engine: Engine, env: Settings
) -> None:
    _support_week(engine)
    faq_compile.faq_extraction(data.context(engine, env, EXTRACT_TICK))
    ctx = data.context(engine, env, COMPILE_TICK)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(faq_compile.faq_compilation(ctx))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["drafts_created"] for r in results) == 1
    assert len(_drafts(engine)) == 1
