-- 0003: find an open dead letter by its DynamoDB key, so that a change rejected again (a replay that fails again,
-- a resumed backfill page) bumps `attempts` instead of adding a row, without reading every open dead letter of
-- the mapping. Requires: 0001.

CREATE INDEX dead_letters_open_by_key ON ddbrepl.dead_letters (mapping, key) WHERE resolved_at IS NULL;
