"""The one cron grammar in Postgres: ``agnt_cron_problem`` accepts and refuses
exactly what ``agnt_jobs.scheduler.cron.parse`` does, with the same message.

Vixie cron's grammar as cronie reads it: five fields (and a sixth, seconds, last,
for tests and benchmarks), ``*``, ``n``, ``a-b``, ``*/k``, ``a-b/k`` and lists of
them; month and weekday names; 0 and 7 are Sunday. Refused besides what 0013
refused: a step on a single value (``5/10``), a step larger than the field, numbers
of three digits or more, ``@daily``-style macros (the message gives the five
fields), characters outside ASCII letters, digits and ``* , - /`` (a non-ASCII
digit too), separators other than spaces and tabs, and expressions that can never
fire (``0 0 30 2 *``; ``0 0 29 2 *`` fires in leap years). The trigger that calls
it (``agnt_schedules_check``) is unchanged: it checks a cron when it is inserted or
changed.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CRON_PROBLEM = r"""
CREATE OR REPLACE FUNCTION agnt_cron_problem(_cron text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
-- What is wrong with a cron expression, or NULL when workers can follow it. The
-- grammar and every message are those of agnt_jobs/scheduler/cron.py (a test
-- holds the two equal over a corpus): fields split on spaces and tabs; each a
-- comma list of *, n or a-b, where * and a-b may take /step; names jan..dec and
-- sun..sat in any case; numbers of one or two digits; 0 and 7 are Sunday; a
-- sixth field is seconds; a cron that can never fire is refused.
DECLARE
    _example text := 'write 5 fields, minute hour day-of-month month day-of-week, '
                     'e.g. ''*/5 * * * *''';
    _names text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week',
                           'second'];
    _low int[] := ARRAY[0, 0, 1, 1, 0, 0];
    _high int[] := ARRAY[59, 23, 31, 12, 7, 59];
    _months text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug',
                            'sep', 'oct', 'nov', 'dec'];
    _days text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    -- Days in each month of a leap year.
    _longest int[] := ARRAY[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    _stripped text;
    _macro text;
    _fields text[];
    _field text;
    _bad text;
    _code text;
    _i int;
    _item text;
    _parts text[];
    _first int;
    _last int;
    _step int;
    _span int;
    _bound text;
    _value int;
    _month_values int[] := ARRAY[]::int[];
    _day_values int[] := ARRAY[]::int[];
    _values int[];
BEGIN
    _stripped := btrim(COALESCE(_cron, ''), E' \t');
    IF _stripped = '' THEN
        RETURN 'it is empty: ' || _example;
    END IF;
    IF left(_stripped, 1) = '@' THEN
        _macro := CASE lower(_stripped)
            WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
            WHEN '@monthly' THEN '0 0 1 * *' WHEN '@weekly' THEN '0 0 * * 0'
            WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
            WHEN '@hourly' THEN '0 * * * *' END;
        IF _macro IS NOT NULL THEN
            RETURN format('macros are not read: write ''%s'' for %s', _macro,
                          _stripped);
        END IF;
        RETURN 'a cron does not start with @: ' || _example;
    END IF;
    _fields := regexp_split_to_array(_stripped, E'[ \t]+');
    IF array_length(_fields, 1) NOT IN (5, 6) THEN
        RETURN format('it has %s fields: %s', array_length(_fields, 1), _example);
    END IF;
    FOR _i IN 1 .. array_length(_fields, 1) LOOP
        _field := _fields[_i];
        _bad := substring(_field FROM '[^0-9A-Za-z*,/-]');
        IF _bad IS NOT NULL THEN
            _code := upper(to_hex(ascii(_bad)));
            RETURN format('the %s field has a character cron does not know (U+%s): '
                          'use digits, names, * , - and /', _names[_i],
                          CASE WHEN length(_code) < 4 THEN lpad(_code, 4, '0')
                               ELSE _code END);
        END IF;
        _values := ARRAY[]::int[];
        FOREACH _item IN ARRAY string_to_array(lower(_field), ',') LOOP
            _parts := regexp_match(
                _item, '^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$');
            IF _parts IS NULL
               OR (_parts[4] IS NOT NULL AND _parts[2] IS NOT NULL
                   AND _parts[3] IS NULL) THEN
                RETURN format('the %s field ''%s'' is not *, n, a-b or a list of '
                              'them; only * and a-b take a /step', _names[_i], _field);
            END IF;
            IF _parts[1] IS NOT NULL THEN
                _first := _low[_i];
                _last := _high[_i];
            ELSE
                _first := NULL;
                _last := NULL;
                FOREACH _bound IN ARRAY ARRAY[_parts[2], COALESCE(_parts[3], _parts[2])]
                LOOP
                    IF _bound ~ '^[0-9]{1,2}$' THEN
                        _value := _bound::int;
                    ELSIF _i = 4 AND _bound = ANY (_months) THEN
                        _value := array_position(_months, _bound);
                    ELSIF _i = 5 AND _bound = ANY (_days) THEN
                        _value := array_position(_days, _bound) - 1;
                    ELSE
                        _value := -1;
                    END IF;
                    IF _value NOT BETWEEN _low[_i] AND _high[_i] THEN
                        RETURN format('the %s field ''%s'' has ''%s'': use %s to %s%s',
                                      _names[_i], _field, _bound, _low[_i], _high[_i],
                                      CASE _i WHEN 4 THEN ' or jan to dec'
                                              WHEN 5 THEN ' or sun to sat'
                                              ELSE '' END);
                    END IF;
                    IF _first IS NULL THEN
                        _first := _value;
                    ELSE
                        _last := _value;
                    END IF;
                END LOOP;
                IF _first > _last THEN
                    RETURN format('the %s field ''%s'' has the range %s-%s backwards: '
                                  'a range goes from low to high', _names[_i], _field,
                                  _parts[2], _parts[3]);
                END IF;
            END IF;
            _step := 1;
            IF _parts[4] IS NOT NULL THEN
                _span := _high[_i] - _low[_i] + 1;
                _step := CASE WHEN _parts[4] ~ '^[0-9]{1,2}$' THEN _parts[4]::int
                              ELSE 0 END;
                IF _step NOT BETWEEN 1 AND _span THEN
                    RETURN format('the %s field ''%s'' has step %s: use 1 to %s',
                                  _names[_i], _field, _parts[4], _span);
                END IF;
            END IF;
            _values := _values || ARRAY(SELECT generate_series(_first, _last, _step));
        END LOOP;
        IF _i = 3 THEN
            _day_values := _values;
        ELSIF _i = 4 THEN
            _month_values := _values;
        END IF;
    END LOOP;
    IF left(_fields[3], 1) <> '*' AND left(_fields[5], 1) = '*' AND NOT EXISTS (
        SELECT 1 FROM unnest(_month_values) m, unnest(_day_values) d
        WHERE d <= _longest[m])
    THEN
        RETURN format('it never fires: no month in ''%s'' has a day ''%s''',
                      _fields[4], _fields[3]);
    END IF;
    RETURN NULL;
END;
$$
"""


def _previous_definition() -> str:
    """The function as revision 0013 created it, to return to on downgrade."""
    path = Path(__file__).with_name("0013_runtime_schedules.py")
    spec = importlib.util.spec_from_file_location("_revision_0013", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CRON_PROBLEM).replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
    )


def upgrade() -> None:
    op.execute(CRON_PROBLEM)


def downgrade() -> None:
    op.execute(_previous_definition())
