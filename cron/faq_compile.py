"""FAQ building from support conversations, in two weekly steps.

faq_extraction (Sun 23:59 WITA) pulls the question sentences users asked support into
``faq_candidates``, one row per normalised question with the ids of the messages that
asked it. faq_compilation (Sun 03:00 WITA) clusters the recent candidates by TF-IDF
cosine similarity (``cron.clustering``) and writes one draft FAQ entry per cluster
asked often enough: the most asked wording, the most typical answer support gave, how
many times it was asked, and where it came from. A draft's identity is its cluster's
anchor (earliest) candidate, so re-runs update drafts in place.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.llm import Assist
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from cron.clustering import Cluster, LeaderClustering
from cron.text import idf, medoid, normalise, questions, tfidf
from cron.text import tokens as text_tokens

logger = logging.getLogger(__name__)

SUPPORT_QUESTIONS = sa.text(
    """
    SELECT id, text, created_at FROM interactions
    WHERE is_support AND role = 'user'
      AND created_at >= :start AND created_at < :end
      AND (created_at, id) > (:after_at, :after_id)
    ORDER BY created_at, id
    LIMIT :limit
    """
)

# One row per normalised question; a re-run adds no message id twice and, when it
# has nothing new for a candidate, leaves the row alone.
UPSERT_CANDIDATES = sa.text(
    """
    INSERT INTO faq_candidates AS c
      (normalized_text, text, source_message_ids, first_seen_at, last_seen_at)
    SELECT r.normalized_text, r.text, r.ids, r.first_seen_at, r.last_seen_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
      normalized_text text, text text, ids bigint[],
      first_seen_at timestamptz, last_seen_at timestamptz)
    ON CONFLICT (normalized_text) DO UPDATE SET
      source_message_ids = ARRAY(
        SELECT DISTINCT u
        FROM unnest(c.source_message_ids || EXCLUDED.source_message_ids) u
        ORDER BY u),
      first_seen_at = least(c.first_seen_at, EXCLUDED.first_seen_at),
      last_seen_at = greatest(c.last_seen_at, EXCLUDED.last_seen_at),
      updated_at = now()
    WHERE NOT EXCLUDED.source_message_ids <@ c.source_message_ids
    RETURNING (xmax = 0) AS inserted
    """
)

RECENT_CANDIDATES = sa.text(
    """
    SELECT id, normalized_text, cardinality(source_message_ids) AS asked
    FROM faq_candidates
    WHERE last_seen_at >= :since AND id > :after
    ORDER BY id
    LIMIT :limit
    """
)

CLUSTER_MEMBERS = sa.text(
    """
    SELECT id, text, source_message_ids FROM faq_candidates WHERE id = ANY(:ids)
    """
)

# The agent's first reply after each question, in the question's conversation.
ANSWERS = sa.text(
    """
    SELECT q.id AS question_id, a.text
    FROM interactions q
    CROSS JOIN LATERAL (
      SELECT text FROM interactions a
      WHERE a.conversation_id = q.conversation_id AND a.id > q.id AND a.role = 'agent'
      ORDER BY a.id LIMIT 1
    ) a
    WHERE q.id = ANY(:ids)
    ORDER BY q.id DESC
    """
)

UPSERT_DRAFT = sa.text(
    """
    INSERT INTO faq_drafts AS d
      (anchor_candidate_id, question, answer, answer_method, cluster_size,
       candidate_ids, source_message_ids, compiled_at)
    VALUES (:anchor, :question, :answer, :method, :size,
            CAST(:candidate_ids AS bigint[]), CAST(:source_ids AS bigint[]),
            :compiled_at)
    ON CONFLICT (anchor_candidate_id) DO UPDATE SET
      question = EXCLUDED.question, answer = EXCLUDED.answer,
      answer_method = EXCLUDED.answer_method, cluster_size = EXCLUDED.cluster_size,
      candidate_ids = EXCLUDED.candidate_ids,
      source_message_ids = EXCLUDED.source_message_ids,
      compiled_at = EXCLUDED.compiled_at, updated_at = now(), retired_at = NULL
    WHERE (d.question, d.answer, d.answer_method, d.cluster_size, d.candidate_ids,
           d.source_message_ids, d.retired_at)
      IS DISTINCT FROM (EXCLUDED.question, EXCLUDED.answer, EXCLUDED.answer_method,
           EXCLUDED.cluster_size, EXCLUDED.candidate_ids, EXCLUDED.source_message_ids,
           NULL::timestamptz)
    RETURNING (xmax = 0) AS inserted
    """
)

RETIRE_DRAFTS = sa.text(
    """
    UPDATE faq_drafts SET retired_at = :now, updated_at = now()
    WHERE retired_at IS NULL
      AND NOT (anchor_candidate_id = ANY(CAST(:anchors AS bigint[])))
    """
)

ANSWER_SYSTEM = (
    "You write the answer of one entry of a customer-support FAQ for a restaurant "
    "and venue booking service. Use only facts found in the support replies given. "
    "At most four sentences, friendly and direct, no greeting."
)


@job("faq_extraction")
def faq_extraction(ctx: RunContext) -> JobResult:
    """Extract the question sentences of users' support messages from the
    ``faq_extraction_window_days`` (7 days) before the tick into FAQ candidates,
    deduplicated by normalised text, each with the ids of the messages that asked it.

    A rolling window ending at the tick (Sun 23:59) rather than the calendar week, so
    a message in the week's last minute is read by the next run instead of never.
    Re-running over the same messages adds nothing: message ids are merged as a set.
    """
    settings = ctx.settings
    end = ctx.tick
    start = end - timedelta(days=settings.faq_extraction_window_days)
    after: tuple[Any, int] = (start, 0)
    scanned = found = created = updated = 0
    with ctx.engine.connect() as connection:
        while True:
            checkpoint()
            rows = connection.execute(
                SUPPORT_QUESTIONS,
                {
                    "start": start,
                    "end": end,
                    "after_at": after[0],
                    "after_id": after[1],
                    "limit": settings.job_chunk_size,
                },
            ).all()
            if not rows:
                break
            after = (rows[-1].created_at, rows[-1].id)
            scanned += len(rows)
            candidates: dict[str, dict[str, Any]] = {}
            for row in rows:
                for question in questions(row.text):
                    found += 1
                    key = normalise(question)
                    entry = candidates.setdefault(
                        key,
                        {
                            "normalized_text": key,
                            "text": question,
                            "ids": [],
                            "first_seen_at": row.created_at.isoformat(),
                        },
                    )
                    if row.id not in entry["ids"]:
                        entry["ids"].append(row.id)
                    entry["last_seen_at"] = row.created_at.isoformat()
            if candidates:
                outcome = connection.execute(
                    UPSERT_CANDIDATES, {"rows": json.dumps(list(candidates.values()))}
                ).scalars()
                for inserted in outcome:
                    created += inserted
                    updated += not inserted
            connection.commit()
    result = {
        "messages_scanned": scanned,
        "questions_found": found,
        "candidates_created": created,
        "candidates_updated": updated,
    }
    logger.info("faq extraction done", extra=logs.event("faq_extraction", **result))
    return result


def _recent_candidates(
    connection: sa.Connection, since: Any, chunk_size: int
) -> Iterator[Any]:
    """The candidates asked since ``since``, by id, one short read per chunk."""
    after = 0
    while True:
        checkpoint()
        rows = connection.execute(
            RECENT_CANDIDATES, {"since": since, "after": after, "limit": chunk_size}
        ).all()
        connection.commit()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


def _cluster(
    connection: sa.Connection, since: Any, chunk_size: int, threshold: float
) -> LeaderClustering:
    """Two passes over the candidates: document frequencies, then clustering. Memory
    holds the vocabulary and the clusters, never the candidates' rows."""
    frequencies: Counter[str] = Counter()
    count = 0
    for row in _recent_candidates(connection, since, chunk_size):
        frequencies.update(set(text_tokens(row.normalized_text, numbers=False)))
        count += 1
    weights = idf(frequencies, count)
    clustering = LeaderClustering(threshold)
    for row in _recent_candidates(connection, since, chunk_size):
        vector = tfidf(text_tokens(row.normalized_text, numbers=False), weights)
        clustering.add(row.id, vector, row.asked)
    return clustering


def _draft(
    connection: sa.Connection, cluster: Cluster, max_answers: int, llm: Assist
) -> dict[str, Any]:
    """One cluster's draft: most asked wording, most typical answer, its sources."""
    members = {
        row.id: row
        for row in connection.execute(CLUSTER_MEMBERS, {"ids": cluster.members})
    }
    if not members:  # deleted since they were clustered
        return {"size": 0}
    asked = dict(zip(cluster.members, cluster.weights, strict=True))
    top = min(members, key=lambda cid: (-asked[cid], cid))
    source_ids = sorted({i for row in members.values() for i in row.source_message_ids})
    answers = [
        row.text
        for row in connection.execute(ANSWERS, {"ids": source_ids[-max_answers:]})
    ]
    best = medoid(answers)
    answer = answers[best] if best is not None else None
    method = "extractive" if answer else None
    if answer and llm.enabled:
        others = [a for i, a in enumerate(answers) if i != best]
        replies = [answer, *others[:4]]
        prompt = f"Question: {members[top].text}\n\nSupport replies:\n" + "\n".join(
            f"- {' '.join(r.split())[:600]}" for r in replies
        )
        written = llm.complete(ANSWER_SYSTEM, prompt)
        if written:
            answer, method = written, "llm"
    return {
        "anchor": cluster.leader,
        "question": members[top].text,
        "answer": answer,
        "method": method,
        "size": len(source_ids),
        "candidate_ids": sorted(members),
        "source_ids": source_ids,
    }


@job("faq_compilation")
def faq_compilation(ctx: RunContext) -> JobResult:
    """Cluster the FAQ candidates asked within ``faq_compile_window_days`` (90 days)
    before the tick, and write one draft FAQ entry per cluster asked at least
    ``faq_min_cluster_size`` (2) times: question (the most asked wording), best answer
    (the agent reply most similar to the others given to the cluster's questions),
    cluster size (messages that asked it) and source ids.

    Drafts are keyed by their cluster's anchor (its earliest candidate), so a re-run
    updates them in place and writes nothing when nothing changed. A live draft whose
    cluster this run did not produce (merged elsewhere, no longer asked in the
    window) is retired, not deleted. With an LLM configured it rewrites the answer
    from the replies; on failure the extractive answer stays (``llm_fallbacks``).
    """
    settings = ctx.settings
    since = ctx.tick - timedelta(days=settings.faq_compile_window_days)
    created = updated = unchanged = unanswered = 0
    with ctx.engine.connect() as connection, Assist.from_settings(settings) as llm:
        clustering = _cluster(
            connection, since, settings.job_chunk_size, settings.faq_cluster_similarity
        )
        anchors = []
        for cluster in clustering.clusters:
            if cluster.size < settings.faq_min_cluster_size:
                continue  # cheap test first: most clusters are one-off questions
            draft = _draft(
                connection, cluster, settings.faq_max_answers_per_cluster, llm
            )
            connection.commit()  # no transaction stays open across an LLM call
            if draft["size"] < settings.faq_min_cluster_size:
                continue  # one message asking twice in other words
            anchors.append(cluster.leader)
            unanswered += draft["answer"] is None
            outcome = connection.execute(
                UPSERT_DRAFT, {**draft, "compiled_at": ctx.tick}
            ).scalar()
            connection.commit()
            if outcome is None:
                unchanged += 1
            elif outcome:
                created += 1
            else:
                updated += 1
        retired = connection.execute(
            RETIRE_DRAFTS, {"now": ctx.now, "anchors": anchors}
        ).rowcount
        connection.commit()
        result = {
            "candidates": sum(len(c.members) for c in clustering.clusters),
            "clusters": len(clustering.clusters),
            "drafts_created": created,
            "drafts_updated": updated,
            "drafts_unchanged": unchanged,
            "drafts_retired": retired,
            "drafts_without_answer": unanswered,
            **llm.summary(),
        }
    logger.info("faq compilation done", extra=logs.event("faq_compilation", **result))
    return result
