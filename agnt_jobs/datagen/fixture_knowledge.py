"""Benchmark data for the heavy jobs in ``cron/``: conversations with the agent,
support chats, reflections and FAQ candidates.

Due work, independent of the scale: ``:light_users`` users (a tenth of ``:due``)
talked with the agent in the 24 hours before ``:at``, ten messages each
(light_dreaming); the same users have three reflections in the previous ISO week
and one preference said twice last week (deep_dreaming: an insight and a merge
each); ``:due / 2`` support messages of the last three days
(faq_extraction); ``:due / 10`` FAQ candidates of the last month
(faq_compilation). The background is older than every window.
"""

from __future__ import annotations

PHRASES = """ARRAY[
    'I would love sushi in Canggu tonight',
    'Book a table for two at eight please',
    'Any rooftop bar in Seminyak with a sunset view',
    'My wife is vegetarian so no meat please',
    'Can you find a spa in Ubud for Saturday',
    'We want a beach club in Uluwatu with a pool',
    'Is there live music at the jazz bar this week',
    'Saya suka makanan pedas dan seafood',
    'Remind me to bring the voucher on Friday',
    'Find a quiet cafe to work from near Berawa',
    'Do they have gluten free pasta',
    'Reserve the yoga class tomorrow morning'
]"""

QUESTIONS = """ARRAY[
    'How do I cancel my booking',
    'Can I change the number of guests',
    'How do I get a refund for a cancelled table',
    'Where can I see my receipt',
    'Why was my card declined',
    'Can I pay with cash at the venue',
    'What time does the spa open on Sunday',
    'How do I add a note for the restaurant'
]"""

BACKGROUND_INTERACTIONS = f"""
INSERT INTO interactions (user_id, conversation_id, role, text, is_support, created_at)
SELECT 1 + g % :users, 'old-' || (g / 6), (ARRAY['user', 'agent'])[1 + g % 2],
       ({PHRASES})[1 + g % 12], g % 10 = 0,
       CAST(:at AS timestamptz) - interval '10 days' - (g % 30) * interval '1 day'
FROM generate_series(1, 5000 * :scale) g
"""

LIGHT_INTERACTIONS = f"""
INSERT INTO interactions (user_id, conversation_id, role, text, is_support, created_at)
SELECT u, 'night-' || u, CASE WHEN m % 2 = 0 THEN 'user' ELSE 'agent' END,
       CASE WHEN m % 2 = 0 THEN ({PHRASES})[1 + (u + m) % 12] || '. '
                                || ({PHRASES})[1 + (u * 7 + m) % 12]
            ELSE 'Sure, I found three places for you.' END,
       false,
       CAST(:at AS timestamptz) - interval '20 hours' + m * interval '1 hour'
FROM generate_series(1, :light_users) u, generate_series(0, 9) m
"""

SUPPORT_INTERACTIONS = f"""
INSERT INTO interactions (user_id, conversation_id, role, text, is_support, created_at)
SELECT 1 + g % :users, 'support-' || (g / 2),
       CASE WHEN g % 2 = 0 THEN 'user' ELSE 'agent' END,
       CASE WHEN g % 2 = 0
            THEN ({QUESTIONS})[1 + (g / 2) % 8] || ' for order ' || (g % 97) || '?'
            ELSE 'Open the app, tap the booking and choose the option.' END,
       true, CAST(:at AS timestamptz) - interval '3 days' + g * interval '1 second'
FROM generate_series(0, :due / 2 - 1) g
"""

REFLECTIONS = """
INSERT INTO reflections (user_id, reflection_date, topics, preferences, open_loops,
                         summary, interaction_count, method)
SELECT u, CAST(:previous_week_date AS date) + d,
       '["sushi", "canggu", "rooftop"]'::jsonb, '["vegetarian"]'::jsonb,
       '["voucher"]'::jsonb, 'Looked for dinner in Canggu.', 6, 'extractive'
FROM generate_series(1, :light_users) u, generate_series(0, 2) d
UNION ALL
SELECT :light_users + g, CAST(:previous_week_date AS date) - 28, '["spa"]'::jsonb,
       '[]'::jsonb, '[]'::jsonb,
       'Asked about spas.', 3, 'extractive'
FROM generate_series(1, least(1000 * :scale, :users - :light_users)) g
"""

FAQ_CANDIDATES = f"""
INSERT INTO faq_candidates (normalized_text, text, source_message_ids, first_seen_at,
                            last_seen_at)
SELECT lower(({QUESTIONS})[1 + g % 8]) || ' ' || g, ({QUESTIONS})[1 + g % 8] || '?',
       ARRAY[g]::bigint[],
       CASE WHEN g <= :due / 10 THEN CAST(:at AS timestamptz) - interval '20 days'
            ELSE CAST(:at AS timestamptz) - interval '200 days' END,
       CASE WHEN g <= :due / 10 THEN CAST(:at AS timestamptz) - interval '2 days'
            ELSE CAST(:at AS timestamptz) - interval '190 days' END
FROM generate_series(1, 100 * :scale + :due / 10) g
"""

DUPLICATE_MEMORIES = """
INSERT INTO memories (user_id, kind, content, pinned, created_at, last_accessed_at)
SELECT u, 'preference', 'Prefers a quiet corner table away from the music', false,
       CAST(:at AS timestamptz) - interval '8 days' + copy * interval '1 day',
       CAST(:at AS timestamptz) - interval '1 day'
FROM generate_series(1, :light_users) u, generate_series(0, 1) copy
"""

STATEMENTS: list[tuple[str, str]] = [
    ("interactions", BACKGROUND_INTERACTIONS),
    ("interactions", LIGHT_INTERACTIONS),
    ("interactions", SUPPORT_INTERACTIONS),
    ("reflections", REFLECTIONS),
    ("memories", DUPLICATE_MEMORIES),
    ("faq_candidates", FAQ_CANDIDATES),
]
