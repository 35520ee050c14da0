"""What the dreaming jobs write, as pure functions of the rows they read: a nightly
reflection from one user's messages, and a weekly insight from one user's reflections
and memories. The job modules do the SQL; everything here is deterministic text work
(``cron.text``) that unit tests can check without a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cron.text import normalise, sentences, stem, summarise, tokens, top_terms

MAX_ITEMS = 5
MAX_ITEM_CHARS = 200
SUMMARY_SENTENCES = 3

# Phrases (normalised) that state a lasting like, dislike or constraint.
PREFERENCE_CUES = (
    "i like", "i love", "i prefer", "i enjoy", "i hate", "i don t like",
    "i do not like", "i can t eat", "i cannot eat", "i don t eat", "i avoid",
    "favourite", "favorite", "allergic", "vegetarian", "vegan", "halal",
    "gluten", "no spicy", "not spicy", "saya suka", "aku suka", "lebih suka",
    "tidak suka", "gak suka", "nggak suka", "alergi", "tidak makan", "pedas",
)  # fmt: skip
# Phrases (normalised) where the user asks for, or the agent promises, a follow-up.
FOLLOW_UP_CUES = (
    "remind me", "let me know", "get back to you", "i ll check", "i will check",
    "i ll confirm", "i will confirm", "i ll let you know", "follow up",
    "ingatkan", "kabari", "nanti saya cek", "akan saya cek", "saya cek dulu",
)  # fmt: skip


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: str
    role: str  # user | agent
    text: str


@dataclass
class ReflectionText:
    topics: list[str]
    preferences: list[str]
    open_loops: list[str]
    summary: str
    interaction_count: int


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"


def _has_cue(sentence: str, cues: Sequence[str]) -> bool:
    padded = f" {normalise(sentence)} "
    return any(f" {cue} " in padded for cue in cues)


def _unique(items: list[str], limit: int) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for item in items:
        key = normalise(item)
        if key and key not in seen:
            seen.add(key)
            kept.append(_clip(item))
    return kept[:limit]


def open_loops(messages: Sequence[Message]) -> list[str]:
    """Loose ends of the window: a conversation whose last word is the user's (the
    agent never answered), and follow-ups asked for or promised."""
    loops: list[str] = []
    last_by_conversation: dict[str, Message] = {}
    for message in messages:
        last_by_conversation[message.conversation_id] = message
        loops.extend(s for s in sentences(message.text) if _has_cue(s, FOLLOW_UP_CUES))
    unanswered = [m.text for m in last_by_conversation.values() if m.role == "user"]
    return _unique(unanswered + loops, MAX_ITEMS)


def reflect(
    messages: Sequence[Message],
    max_topics: int,
    background: Mapping[str, float] | None = None,
) -> ReflectionText:
    """One user's reflection on ``messages`` (oldest first): what they talked about
    (the user's own words, weighed by their idf in ``background``, everybody's
    messages of the night, so "table" and "tonight" sink and "sushi" rises; the
    agent's words only when the user said nothing of substance), what they like or
    avoid, what is left open, and a short extractive summary of their messages."""
    said = [m.text for m in messages if m.role == "user"]
    topic_source = said if any(tokens(t) for t in said) else [m.text for m in messages]
    topics = top_terms(topic_source, max_topics, background)
    preferences = _unique(
        [s for text in said for s in sentences(text) if _has_cue(s, PREFERENCE_CUES)],
        MAX_ITEMS,
    )
    conversations = len({m.conversation_id for m in messages})
    key_points = summarise(said, SUMMARY_SENTENCES)
    summary = (
        f"{len(messages)} messages in {conversations} conversation"
        f"{'s' if conversations != 1 else ''}."
    )
    if topics:
        summary += f" Talked about {', '.join(topics)}."
    if key_points:
        summary += " Said: " + " ".join(_clip(p) for p in key_points)
    return ReflectionText(
        topics=topics,
        preferences=preferences,
        open_loops=open_loops(messages),
        summary=summary,
        interaction_count=len(messages),
    )


def reflection_prompt(messages: Sequence[Message], budget: int = 6000) -> str:
    """The transcript an LLM summarises, newest messages kept when over budget."""
    lines: list[str] = []
    used = 0
    for message in reversed(messages):
        line = f"{message.role}: {' '.join(message.text.split())}"
        if used + len(line) > budget:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(reversed(lines))


@dataclass
class DayReflection:
    reflection_date: str
    topics: list[str]
    preferences: list[str]
    open_loops: list[str]


@dataclass
class Memory:
    id: int
    kind: str
    content: str
    pinned: bool
    created_at: datetime
    last_accessed_at: datetime | None = None


@dataclass
class InsightText:
    topics: list[dict[str, object]]
    preferences: list[str]
    open_loops: list[str]
    summary: str
    reflection_count: int


def consolidate(
    days: Sequence[DayReflection], new_memories: Sequence[Memory], max_topics: int
) -> InsightText:
    """A week in one insight: topics ranked by the days they came up on (a topic the
    user returns to matters more than one long chat), preferences and open loops of
    the week with the most recent first, and the memories the week added."""
    day_counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for day in days:
        for topic in day.topics:
            key = " ".join(stem(w) for w in normalise(topic).split())
            spelling.setdefault(key, topic)
            day_counts[key] += 1
    ranked = sorted(day_counts, key=lambda k: (-day_counts[k], spelling[k]))
    topics = [{"topic": spelling[k], "days": day_counts[k]} for k in ranked]
    topics = topics[:max_topics]
    latest_first = list(reversed(days))
    preferences = _unique(
        [p for d in latest_first for p in d.preferences]
        + [m.content for m in new_memories if m.kind == "preference"],
        MAX_ITEMS * 2,
    )
    loops = _unique([loop for d in latest_first for loop in d.open_loops], MAX_ITEMS)
    remembered = _unique([m.content for m in new_memories], MAX_ITEMS)
    plural = "s" if len(days) != 1 else ""
    parts = [f"Talked with the agent on {len(days)} day{plural}."]
    if topics:
        parts.append(
            "Recurring topics: "
            + ", ".join(f"{t['topic']} ({t['days']}d)" for t in topics)
            + "."
        )
    if preferences:
        parts.append("Preferences: " + "; ".join(preferences[:3]) + ".")
    if loops:
        parts.append("Still open: " + "; ".join(loops[:3]) + ".")
    if remembered:
        parts.append("Newly remembered: " + "; ".join(remembered[:3]) + ".")
    return InsightText(
        topics=topics,
        preferences=preferences,
        open_loops=loops,
        summary=" ".join(parts),
        reflection_count=len(days),
    )
