"""The deterministic text method of the heavy jobs: normalisation, tokens, TF-IDF
vectors, cosine similarity and extractive summaries, in plain Python.

Everything here is a pure function of its input (no randomness, no network, ties broken
by position or alphabetically), so a job re-run on the same rows writes the same text.
Users write in English and Indonesian, often mixed: stop words cover both, and the
stemmer only strips the English inflections that split a topic in two ("bookings",
"booked") while leaving Indonesian words, whose affixes carry meaning, alone.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

Vector = dict[str, float]


def _word_set(block: str) -> frozenset[str]:
    return frozenset(block.split())


STOP_WORDS = _word_set(
    """
    a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each
    few for from further get got had has have having he her here hers herself him
    himself his how i if in into is it its itself just let me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own please
    same she should so some such than thank thanks that the their theirs them
    themselves then there these they this those through to too under until up us very
    want was we were what when where which while who whom why will with would you your
    yours yourself yourselves hi hello hey ok okay yes yeah im ive dont cant one
    ada adalah agar akan aku anda apa apakah atau bagaimana bahwa banyak belum bisa
    boleh buat dan dari dengan di dia hal ini itu juga jika ka kak kakak kalau kami
    kamu kan ke kenapa ketika kita lagi lah mau mengapa nya pada para saja saya sih
    siapa sudah supaya tapi tidak ya yang dong deh nih terima kasih tolong mohon
    berapa kapan mana dimana bisakah
    love like good great nice need know think see look tell come go going take give
    find try really much many well sure maybe still thing something anything make
    two three four five six seven eight nine ten satu dua tiga empat lima
    """
)

QUESTION_OPENERS = _word_set(
    """
    what how when where why who whom which whose can could do does did is are am was
    were will would should shall may might have has any apa apakah bagaimana kapan
    dimana mana kenapa mengapa berapa bisa bisakah boleh siapa gimana
    """
)

_NON_WORD = re.compile(r"[^0-9a-z]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def normalise(text: str) -> str:
    """Lower case, accents folded, punctuation as spaces, single spaces."""
    folded = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", ascii_only.lower()).split())


def _measure(word: str) -> int:
    """How many vowel-then-consonant runs ``word`` has (Porter's "m")."""
    shape = "".join("v" if ch in "aeiouy" else "c" for ch in word)
    return len(re.findall("v+c+", shape))


def stem(word: str) -> str:
    """Strip English plural and -ing/-ed endings so that "bookings", "booked" and
    "booking" meet at "book"; short words, numbers and others are kept as they are."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix, shortest in (("ing", 3), ("ed", 4)):
        if word.endswith(suffix) and len(word) - len(suffix) >= shortest:
            word = word[: -len(suffix)]
            # "stopping" -> "stopp" -> "stop" (but "calling" -> "call").
            if word[-1] == word[-2] and word[-1] not in "aeioulsz":
                word = word[:-1]
            break
    # "cancelled" -> "cancell" -> "cancel", and "cancel" stays; "call" keeps its l.
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


def _content_words(text: str) -> list[str]:
    return [w for w in normalise(text).split() if len(w) > 1 and w not in STOP_WORDS]


def tokens(text: str, numbers: bool = True) -> list[str]:
    """Content words of ``text``, stemmed, in order (no stop or 1-letter words);
    ``numbers=False`` also drops numbers (order ids and times that would split a
    question from its twins)."""
    return [
        stem(word) for word in _content_words(text) if numbers or not word.isdigit()
    ]


def sentences(text: str) -> list[str]:
    """Split on sentence punctuation and line breaks; blank pieces dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]


def is_question(sentence: str) -> bool:
    """A sentence asks something: it ends with '?' or opens with a question word."""
    stripped = sentence.strip()
    if stripped.endswith("?"):
        return True
    words = normalise(stripped).split()
    return len(words) >= 3 and words[0] in QUESTION_OPENERS


def questions(text: str) -> list[str]:
    """The question sentences of a message, each with at least one content word."""
    return [s for s in sentences(text) if is_question(s) and tokens(s)]


def document_frequencies(documents: Iterable[Sequence[str]]) -> Counter[str]:
    """In how many documents (token lists) each term appears."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(set(document))
    return counts


def idf(frequencies: Mapping[str, int], document_count: int) -> dict[str, float]:
    """Smoothed inverse document frequency: ``ln((1 + n) / (1 + df)) + 1``."""
    return {
        term: math.log((1 + document_count) / (1 + df)) + 1.0
        for term, df in frequencies.items()
    }


def tfidf(document: Sequence[str], weights: Mapping[str, float]) -> Vector:
    """The L2-normalised TF-IDF vector of a token list; an unseen term weighs as the
    rarest possible (the largest known idf, or 1 with none known)."""
    if not document:
        return {}
    unseen = max(weights.values(), default=1.0)
    raw = {
        term: count * weights.get(term, unseen)
        for term, count in Counter(document).items()
    }
    norm = math.sqrt(sum(value * value for value in raw.values()))
    return {term: value / norm for term, value in raw.items()}


def cosine(left: Mapping[str, float], right: Mapping[str, float]) -> float:
    """Cosine similarity of two L2-normalised sparse vectors (their dot product)."""
    if len(left) > len(right):
        left, right = right, left
    return sum(value * right.get(term, 0.0) for term, value in left.items())


def vectorise(texts: Sequence[str]) -> list[Vector]:
    """TF-IDF vectors of ``texts`` with the idf of these texts themselves."""
    documents = [tokens(text) for text in texts]
    weights = idf(document_frequencies(documents), len(documents))
    return [tfidf(document, weights) for document in documents]


def top_terms(
    texts: Sequence[str], limit: int, weights: Mapping[str, float] | None = None
) -> list[str]:
    """The ``limit`` terms that weigh most across ``texts``: occurrences times the
    term's idf in ``weights`` (a background corpus: terms everybody uses weigh
    little; unknown terms weigh as the rarest), then occurrences, then first use.
    Each term is shown as its most used spelling ("bookings", not the stem "book")."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for text in texts:
        for word in _content_words(text):
            if word.isdigit():
                continue  # "2" or "19" are never a topic
            term = stem(word)
            counts[term] += 1
            spellings.setdefault(term, Counter())[word] += 1
    unseen = max(weights.values(), default=1.0) if weights else 1.0
    order = {term: i for i, term in enumerate(spellings)}

    def rank(term: str) -> tuple[float, int, int]:
        weight = weights.get(term, unseen) if weights else 1.0
        return (-counts[term] * weight, -counts[term], order[term])

    return [
        min(spellings[term].items(), key=lambda item: (-item[1], item[0]))[0]
        for term in sorted(counts, key=rank)[:limit]
    ]


def medoid(texts: Sequence[str]) -> int | None:
    """Index of the text most similar on average to the others (the most typical
    one); ties go to the earliest. None when no text has a content word."""
    vectors = vectorise(texts)
    best: tuple[float, int] | None = None
    for index, vector in enumerate(vectors):
        if not vector:
            continue
        score = sum(
            cosine(vector, other) for j, other in enumerate(vectors) if j != index
        )
        if best is None or score > best[0] + 1e-12:
            best = (score, index)
    return None if best is None else best[1]


def summarise(texts: Sequence[str], limit: int) -> list[str]:
    """Extractive summary: the ``limit`` sentences of ``texts`` that carry the most
    of the texts' overall TF-IDF weight, in their original order, none repeated."""
    pieces: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for sentence in sentences(text):
            key = normalise(sentence)
            if key and key not in seen and tokens(sentence):
                seen.add(key)
                pieces.append(sentence)
    if len(pieces) <= limit:
        return pieces
    vectors = vectorise(pieces)
    centre: Counter[str] = Counter()
    for vector in vectors:
        centre.update(vector)
    scores = [sum(centre[t] * v for t, v in vector.items()) for vector in vectors]
    chosen = sorted(range(len(pieces)), key=lambda i: (-scores[i], i))[:limit]
    return [pieces[i] for i in sorted(chosen)]
