-- 0004: an export data file that could not be read (corrupt or truncated gzip, a bad line, a wrong item count)
-- is marked with its reason, so that no other loader of the same run (another process) reads it again; each new
-- `ddbrepl backfill` invocation clears the marks and retries those files. Requires: 0001.

ALTER TABLE ddbrepl.backfill_segments ADD COLUMN error text;
