"""The dreaming jobs' text, without a database: a reflection's topics, preferences
and open loops, and a week's insight."""

from __future__ import annotations

from datetime import UTC, datetime

from cron.reflection import (
    DayReflection,
    Memory,
    Message,
    consolidate,
    open_loops,
    reflect,
    reflection_prompt,
)


def _chat(*turns: tuple[str, str], conversation: str = "c") -> list[Message]:
    return [
        Message(i, conversation, role, said) for i, (role, said) in enumerate(turns)
    ]


def test_reflection_of_a_short_chat() -> None:
    messages = _chat(
        ("user", "Saya suka pantai. Ada beach club di Uluwatu?"),
        ("agent", "Single Fin di Uluwatu bagus, mau saya pesan?"),
        ("user", "Ya, beach club Uluwatu hari Sabtu. Saya alergi udang."),
        ("agent", "Sudah dipesan!"),
    )
    reflection = reflect(messages, 3)
    assert "uluwatu" in reflection.topics
    assert reflection.preferences == ["Saya suka pantai.", "Saya alergi udang."]
    assert reflection.open_loops == []  # the agent had the last word
    assert reflection.interaction_count == 4
    assert reflection.summary.startswith("4 messages in 1 conversation.")


def test_open_loops_unanswered_and_promised() -> None:
    messages = _chat(
        ("user", "Can you find a vegan place?"),
        ("agent", "I'll check and let you know tonight."),
        conversation="a",
    ) + _chat(("user", "Is Potato Head open on Monday?"), conversation="b")
    assert open_loops(messages) == [
        "Is Potato Head open on Monday?",
        "I'll check and let you know tonight.",
    ]


def test_topics_fall_back_to_the_agent_when_the_user_said_nothing() -> None:
    messages = _chat(("user", "ok"), ("agent", "Your spa massage in Ubud is booked."))
    assert "spa" in reflect(messages, 5).topics


def test_prompt_keeps_the_newest_messages_within_budget() -> None:
    messages = _chat(*[("user", f"message number {i}") for i in range(100)])
    prompt = reflection_prompt(messages, budget=100)
    assert prompt.endswith("user: message number 99")
    assert "message number 0\n" not in prompt
    assert len(prompt) <= 100


def test_week_insight_ranks_topics_by_days() -> None:
    days = [
        DayReflection("2026-11-23", ["sushi", "canggu"], ["I love sushi."], []),
        DayReflection("2026-11-24", ["spa"], [], ["remind me about the voucher"]),
        DayReflection("2026-11-26", ["Sushi", "beach"], ["i love sushi"], []),
    ]
    new = [
        Memory(1, "preference", "Prefers window seats", False, datetime.now(UTC)),
        Memory(2, "fact", "Has two kids", False, datetime.now(UTC)),
    ]
    insight = consolidate(days, new, 3)
    assert insight.topics == [
        {"topic": "sushi", "days": 2},
        {"topic": "beach", "days": 1},
        {"topic": "canggu", "days": 1},
    ]
    assert insight.preferences == ["i love sushi", "Prefers window seats"]
    assert insight.open_loops == ["remind me about the voucher"]
    assert insight.reflection_count == 3
    assert "Newly remembered: Prefers window seats; Has two kids." in insight.summary
