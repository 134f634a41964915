-- The verifiable log (docs/adr/0006-signed-checkpoints.md): the Merkle leaves of the log in global
-- order, the signed checkpoints over them and the public keys that signed. All three are append-only,
-- like the log: the leaves are the authentic record an auditor compares the events with, and they are
-- themselves authenticated by the signed roots.
CREATE TABLE log_signing_keys (
    key_id     text PRIMARY KEY,
    public_key bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE log_leaves (
    leaf_index      bigint PRIMARY KEY CHECK (leaf_index >= 0),
    global_position bigint NOT NULL UNIQUE,
    event_id        uuid NOT NULL UNIQUE,
    event_hash      bytea NOT NULL CHECK (length(event_hash) = 32)
);

CREATE TABLE log_checkpoints (
    tree_size      bigint PRIMARY KEY CHECK (tree_size >= 1),
    up_to_position bigint NOT NULL,
    root           bytea NOT NULL CHECK (length(root) = 32),
    signed_at      timestamptz NOT NULL,
    key_id         text NOT NULL REFERENCES log_signing_keys (key_id),
    signature      bytea NOT NULL CHECK (length(signature) = 64)
);

CREATE TRIGGER log_leaves_no_update_or_delete BEFORE UPDATE OR DELETE ON log_leaves
    FOR EACH ROW EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_leaves_no_truncate BEFORE TRUNCATE ON log_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_checkpoints_no_truncate BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION bw_events_are_immutable();
