-- The log's transaction-id offset (docs/runbooks/backup-restore.md). A global position is
-- ((xid + xid_offset) << 20) | index, and `txid` holds xid + xid_offset. It is 0 on a cluster that
-- has only ever written its own log; a restore into another cluster (whose transaction ids start
-- lower) sets it so that every event written after the restore sorts after every restored one, and
-- the relay's horizon (computed in the same shifted ids) still holds back late commits (ADR 0002).
CREATE TABLE log_epoch (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    xid_offset bigint NOT NULL DEFAULT 0 CHECK (xid_offset >= 0)
);
INSERT INTO log_epoch DEFAULT VALUES;
