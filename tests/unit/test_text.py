"""The deterministic text method: normalisation, tokens, TF-IDF, cosine, summaries,
and leader clustering, on hand-made sentences."""

from __future__ import annotations

import math

import pytest

from cron import text
from cron.clustering import LeaderClustering, duplicate_groups


def test_normalise_folds_case_accents_and_punctuation() -> None:
    assert text.normalise("  Café-Bar: OPEN?!  ") == "cafe bar open"
    assert text.normalise("Jl. Raya Ubud, No.5") == "jl raya ubud no 5"
    assert text.normalise("¿¡!") == ""


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("bookings", "book"),
        ("booked", "book"),
        ("booking", "book"),
        ("cancelled", "cancel"),
        ("canceled", "cancel"),
        ("calling", "call"),
        ("parties", "party"),
        ("tables", "table"),
        ("glass", "glass"),
        ("menu", "menu"),
        ("2024", "2024"),
    ],
)
def test_stem_joins_inflections(word: str, expected: str) -> None:
    assert text.stem(word) == expected


def test_tokens_drop_stop_words_in_english_and_indonesian() -> None:
    assert text.tokens("How do I cancel my bookings?") == ["cancel", "book"]
    assert text.tokens("Apakah saya bisa pesan meja untuk besok?") == [
        "pesan",
        "meja",
        "untuk",
        "besok",
    ]


def test_numbers_can_be_left_out() -> None:
    assert text.tokens("Refund for order 4471, table 12b") == [
        "refund",
        "order",
        "4471",
        "table",
        "12b",
    ]
    assert text.tokens("Refund for order 4471", numbers=False) == ["refund", "order"]
    assert text.top_terms(["Table 12 at 19 30, table 12"], 2) == ["table"]


def test_questions_are_found_by_mark_or_opening_word() -> None:
    message = "Hi there. How do I cancel my booking? Thanks! Bisakah bayar pakai kartu"
    assert text.questions(message) == [
        "How do I cancel my booking?",
        "Bisakah bayar pakai kartu",
    ]
    assert text.questions("Great, thanks.") == []
    assert text.questions("Why?") == []  # no content word: nothing to cluster


def test_tfidf_vectors_are_unit_length_and_cosine_is_symmetric() -> None:
    a, b, c = text.vectorise(
        [
            "How do I cancel my booking?",
            "How can I cancel a booking I made?",
            "What time does the spa open on Sunday?",
        ]
    )
    assert math.isclose(math.sqrt(sum(v * v for v in a.values())), 1.0)
    assert text.cosine(a, b) == pytest.approx(text.cosine(b, a))
    assert text.cosine(a, b) > 0.6
    assert text.cosine(a, c) == 0.0
    assert text.cosine(a, a) == pytest.approx(1.0)
    assert text.cosine({}, a) == 0.0


def test_idf_weighs_rare_terms_more() -> None:
    documents = [["spa"], ["spa", "sushi"], ["spa"]]
    weights = text.idf(text.document_frequencies(documents), len(documents))
    assert weights["sushi"] > weights["spa"] == pytest.approx(1.0)


def test_top_terms_prefer_what_is_frequent_here_and_rare_elsewhere() -> None:
    background = text.idf({"book": 95, "table": 90, "dinner": 80, "sushi": 2}, 100)
    said = ["Book a table for sushi", "Sushi dinner with a table by the sea"]
    assert text.top_terms(said, 2, background) == ["sushi", "sea"]
    # Shown in the spelling the user used most, not as a stem.
    assert text.top_terms(["bookings bookings booking"], 1) == ["bookings"]


def test_summary_keeps_the_central_sentences_in_order() -> None:
    texts = [
        "We want sushi in Canggu. The weather is nice.",
        "Sushi for two in Canggu on Friday. Thanks!",
        "Sushi near Canggu beach please.",
    ]
    summary = text.summarise(texts, 2)
    assert len(summary) == 2
    assert all("Canggu" in s for s in summary)
    assert summary == sorted(summary, key=lambda s: " ".join(texts).index(s))
    assert text.summarise(["Sushi. Sushi!"], 3) == ["Sushi."]


def test_medoid_picks_the_most_typical_answer() -> None:
    answers = [
        "Open the booking in the app and tap Cancel booking.",
        "Lol no idea.",
        "Tap Cancel on your booking in the app, it is free until 2h before.",
        "You can cancel the booking from the app.",
    ]
    assert text.medoid(answers) in (0, 2, 3)
    assert text.medoid(answers) != 1
    assert text.medoid(["", "?"]) is None


def test_leader_clustering_groups_similar_questions_only() -> None:
    questions = [
        "How do I cancel my booking?",
        "What time does the spa open on Sunday?",
        "How can I cancel a booking I made?",
        "Is the spa open on Sunday?",
        "Do you have vegan food?",
    ]
    clustering = LeaderClustering(threshold=0.5)
    for key, vector in enumerate(text.vectorise(questions)):
        clustering.add(key, vector)
    assert [c.members for c in clustering.clusters] == [[0, 2], [1, 3], [4]]
    assert clustering.add(9, {}) is None


def test_duplicate_groups_keep_the_first_as_survivor() -> None:
    items = [
        (7, "Allergic to peanuts"),
        (3, "Has two kids"),
        (5, "allergic to peanuts!"),
    ]
    assert duplicate_groups(items, 0.8) == [[7, 5]]
    assert duplicate_groups([(1, "Likes sushi"), (2, "Likes the beach")], 0.8) == []


def test_everything_is_deterministic() -> None:
    sample = ["Sushi in Canggu?", "Spa in Ubud", "Sushi or ramen in Canggu tonight"]
    assert text.vectorise(sample) == text.vectorise(list(sample))
    assert text.top_terms(sample, 3) == text.top_terms(sample, 3)
    assert text.summarise(sample, 2) == text.summarise(sample, 2)
