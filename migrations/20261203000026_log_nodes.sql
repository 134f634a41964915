-- The Merkle tree's complete perfect subtrees (commands/src/merkle.rs `Node`): level 0 holds the leaf
-- hashes, level l the hash of the 2^l leaves from idx·2^l. Derived from log_leaves, extended by each
-- checkpoint in the same transaction; a root or an audit path reads O(log² n) rows instead of every
-- leaf. Not authoritative: `events verify` recomputes every root from the leaves, and the table is
-- emptied and regrown when the leaves are rebuilt (rehash) or restored.
CREATE TABLE log_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
