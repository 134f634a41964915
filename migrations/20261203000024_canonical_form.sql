-- The canonical form the log's hashes are computed in (docs/adr/0007-canonical-form.md). A log
-- written before ADR 0007 stays in 'bw.event.v1' until `betterworld events rehash` re-derives its
-- hashes; `events verify` refuses to judge it until then. A new log starts in 'bw.event.v2'.
CREATE TABLE log_format (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    canonical_form text NOT NULL CHECK (canonical_form IN ('bw.event.v1', 'bw.event.v2')),
    changed_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO log_format (canonical_form)
SELECT CASE WHEN EXISTS (SELECT 1 FROM events) THEN 'bw.event.v1' ELSE 'bw.event.v2' END;

-- What a rehash replaced, under the id of its `LogRehashed` event: the leaves (with the old hashes)
-- and the checkpoints signed over them. Append-only; `events verify` still checks every signature
-- and root here, so a root an auditor kept from before the rehash can be found and checked.
CREATE TABLE log_superseded_leaves (
    rehash_event_id uuid NOT NULL,
    leaf_index      bigint NOT NULL CHECK (leaf_index >= 0),
    global_position bigint NOT NULL,
    event_id        uuid NOT NULL,
    event_hash      bytea NOT NULL CHECK (length(event_hash) = 32),
    PRIMARY KEY (rehash_event_id, leaf_index)
);

CREATE TABLE log_superseded_checkpoints (
    rehash_event_id uuid NOT NULL,
    tree_size       bigint NOT NULL CHECK (tree_size >= 1),
    up_to_position  bigint NOT NULL,
    root            bytea NOT NULL CHECK (length(root) = 32),
    signed_at       timestamptz NOT NULL,
    key_id          text NOT NULL REFERENCES log_signing_keys (key_id),
    signature       bytea NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (rehash_event_id, tree_size)
);

CREATE TRIGGER log_superseded_leaves_no_update_or_delete BEFORE UPDATE OR DELETE ON log_superseded_leaves
    FOR EACH ROW EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_superseded_leaves_no_truncate BEFORE TRUNCATE ON log_superseded_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_superseded_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON log_superseded_checkpoints
    FOR EACH ROW EXECUTE FUNCTION bw_events_are_immutable();
CREATE TRIGGER log_superseded_checkpoints_no_truncate BEFORE TRUNCATE ON log_superseded_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION bw_events_are_immutable();
