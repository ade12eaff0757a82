CREATE SCHEMA IF NOT EXISTS ddbrepl;

CREATE TABLE IF NOT EXISTS ddbrepl.schema_version (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- 0001: the control schema `ddbrepl`: checkpoints, leases, backfill progress, tombstones, dead letters.
-- Requires: PostgreSQL 13 or later. Applied by state/migrate.py, which creates ddbrepl.schema_version first and
-- records this file in it, in the same transaction.

CREATE TABLE ddbrepl.checkpoints (
    stream_arn      text        NOT NULL,
    shard_id        text        NOT NULL,
    source_table    text        NOT NULL,
    parent_shard_id text,
    sequence        numeric(40, 0),          -- last applied sequence number in this shard; NULL: nothing yet
    finished        boolean     NOT NULL DEFAULT false,
    records         bigint      NOT NULL DEFAULT 0,
    last_event_at   timestamptz,             -- ApproximateCreationDateTime of the last applied record
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_arn, shard_id)
);
CREATE INDEX checkpoints_by_table ON ddbrepl.checkpoints (source_table);

CREATE TABLE ddbrepl.streams (
    source_table text        PRIMARY KEY,
    stream_arn   text        NOT NULL,      -- the stream ddbrepl follows; a different LatestStreamArn is a gap
    view_type    text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ddbrepl.leases (
    stream_arn text        NOT NULL,
    shard_id   text        NOT NULL,
    owner      text,
    epoch      bigint      NOT NULL DEFAULT 0,  -- bumped on every change of owner; commits are fenced by it
    expires_at timestamptz,
    PRIMARY KEY (stream_arn, shard_id)
);

CREATE TABLE ddbrepl.backfills (
    source_table   text        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('scan', 'export')),
    source         text,                     -- export location, or NULL for a scan
    total_segments integer,
    started_at     timestamptz NOT NULL DEFAULT now(),
    point_in_time  timestamptz NOT NULL,     -- scan start or export time: the stream hand-off point
    finished_at    timestamptz,
    items          bigint      NOT NULL DEFAULT 0,
    total_items    bigint                    -- DescribeTable ItemCount or the export manifest's itemCount
);

CREATE TABLE ddbrepl.backfill_segments (
    source_table text        NOT NULL REFERENCES ddbrepl.backfills ON DELETE CASCADE,
    segment      integer     NOT NULL,       -- scan segment number, or the export data file's ordinal
    name         text,                       -- export data file key
    resume_key   jsonb,                      -- LastEvaluatedKey in DynamoDB JSON; NULL: from the start
    done         boolean     NOT NULL DEFAULT false,
    items        bigint      NOT NULL DEFAULT 0,
    pages        bigint      NOT NULL DEFAULT 0,
    claimed_by   text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_table, segment)
);

CREATE TABLE ddbrepl.tombstones (
    target_table text           NOT NULL,   -- "schema.table"
    key          jsonb          NOT NULL,   -- the primary key as a JSON array, in key-column order
    sequence     numeric(40, 0),
    deleted_at   timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (target_table, key)
);

CREATE TABLE ddbrepl.dead_letters (
    id            bigserial   PRIMARY KEY,
    source_table  text        NOT NULL,
    mapping       text        NOT NULL,
    target_table  text        NOT NULL,
    origin        text        NOT NULL,     -- scan | export | stream | lambda | replay | repair
    record        jsonb       NOT NULL,     -- the raw change: event, keys, images (DynamoDB JSON), sequence
    key           jsonb,                    -- the DynamoDB key attributes, for finding a record again
    sequence      numeric(40, 0),
    reason        text        NOT NULL,
    column_name   text,
    path          text,
    value_excerpt text,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    attempts      integer     NOT NULL DEFAULT 1,
    resolved_at   timestamptz
);
CREATE INDEX dead_letters_open ON ddbrepl.dead_letters (mapping) WHERE resolved_at IS NULL;

INSERT INTO ddbrepl.schema_version (version, name) VALUES (1, 'control_schema');

CREATE TABLE public."Employees" (
	"Id" BIGINT NOT NULL, 
	"Name" VARCHAR(20), 
	"Department" VARCHAR(10), 
	_ddb_seq NUMERIC(40, 0), 
	_ddb_synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY ("Id")
);


