"""The demo's support messages ask exactly the questions the demo says they ask:
faq_extraction finds one question in each, and the seed's SQL (the text up to the
first "?", after any greeting) reads the same one."""

from __future__ import annotations

import re

import pytest

from agnt_jobs.demo.conversations import FAQ_PARAMS, GREETINGS, QUESTIONS, THANKS
from cron.text import normalise, questions


@pytest.mark.parametrize(
    ("index", "question"), list(enumerate(q for _, q in QUESTIONS))
)
def test_each_support_message_asks_its_one_question(index: int, question: str) -> None:
    for greeting in GREETINGS:
        for thanks in THANKS:
            message = greeting + question + thanks
            assert questions(message) == [question]
            # substring(text FROM '[^!]*[?]'), trimmed
            assert re.search(r"[^!]*[?]", message).group().strip() == question
    assert FAQ_PARAMS["faq_norm"][index] == normalise(question)


def test_topics_index_their_questions() -> None:
    for topic, (first, count) in enumerate(
        zip(FAQ_PARAMS["faq_first"], FAQ_PARAMS["faq_count"], strict=True), start=1
    ):
        assert {t for t, _ in QUESTIONS[first - 1 : first - 1 + count]} == {topic}
    assert sum(FAQ_PARAMS["faq_count"]) == len(QUESTIONS)
