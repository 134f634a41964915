-- The event store: the log, the only truth (docs/adr/0001-event-store.md, 0002-commit-safe-order.md).
--
-- global_position is commit-safe: (xid of the writing transaction << 20) | index of the event in its
-- commit. The relay publishes rows in global_position order, but only rows whose transaction id is
-- below the oldest transaction still running (pg_snapshot_xmin), so a transaction that commits late
-- can never be overtaken: every row it adds sorts after everything already published.
CREATE TABLE events (
    global_position bigint PRIMARY KEY,
    txid            xid8 NOT NULL,
    event_id        uuid NOT NULL UNIQUE,
    aggregate_type  text NOT NULL,
    aggregate_id    text NOT NULL,
    sequence        bigint NOT NULL CHECK (sequence >= 1),
    event_type      text NOT NULL,
    event_version   text NOT NULL,
    payload         jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    recorded_at     timestamptz NOT NULL,
    hash            bytea NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_stream_sequence UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- History is immutable: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION bw_events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION bw_events_are_immutable();

-- Idempotency records, written in the same transaction as the events they answer for.
-- scope_key = sha256(actor scope || 0x00 || Idempotency-Key): keys of different callers never clash.
CREATE TABLE idempotency_records (
    scope_key      bytea PRIMARY KEY,
    request_sha256 bytea NOT NULL,
    status         smallint NOT NULL,
    body           jsonb NOT NULL,
    position       bigint,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_records_created_at ON idempotency_records (created_at);

-- Uniqueness that spans aggregates, decided in the same transaction as the event that claims it.
CREATE TABLE agent_usernames (
    username text PRIMARY KEY,
    agent_id uuid NOT NULL UNIQUE
);
-- API keys by SHA-256 (keys are 256-bit random values, so a fast hash is enough), for authentication
-- that works the moment registration is acknowledged.
CREATE TABLE agent_credentials (
    key_sha256 bytea PRIMARY KEY,
    agent_id   uuid NOT NULL,
    key_prefix text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX agent_credentials_agent ON agent_credentials (agent_id);

-- The relay's checkpoint: the last global position JetStream acknowledged.
CREATE TABLE relay_checkpoints (
    name       text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
