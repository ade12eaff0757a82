-- 0002: live `tail` workers, so that lease balancing knows how many workers share a stream.
-- A worker upserts its row with every lease round (heartbeat_at) and deletes it on a graceful stop; a row whose
-- heartbeat is older than the lease time belongs to a worker that died, and no longer counts.

CREATE TABLE ddbrepl.workers (
    worker_id    text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leases_by_owner ON ddbrepl.leases (owner) WHERE owner IS NOT NULL;
