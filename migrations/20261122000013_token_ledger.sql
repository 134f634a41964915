-- The ImpactToken ledger's read models (projection `token_ledger`). The ledger itself is the
-- `Ledger` streams in `events`; these tables are rebuildable from them.

-- One row per person who has an entry: the balance and its totals.
CREATE TABLE rm_token_balances (
    human_id     uuid PRIMARY KEY,
    balance      bigint NOT NULL CHECK (balance >= 0),
    total_earned bigint NOT NULL CHECK (total_earned >= 0),
    total_spent  bigint NOT NULL CHECK (total_spent >= 0),
    updated_at   timestamptz NOT NULL,
    position     bigint NOT NULL,
    CHECK (balance = total_earned - total_spent)
);

-- Every entry, with the balance before and after it (§1.11, with the CHECKs the design asked for).
CREATE TABLE rm_token_transactions (
    entry_id        uuid PRIMARY KEY,
    human_id        uuid NOT NULL,
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_before  bigint NOT NULL CHECK (balance_before >= 0),
    balance_after   bigint NOT NULL CHECK (balance_after >= 0),
    transaction_type text NOT NULL,
    reference_type  text,
    reference_id    uuid,
    description     text,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL,
    position        bigint NOT NULL,
    CHECK (balance_after = balance_before + amount),
    UNIQUE (human_id, idempotency_key)
);
CREATE INDEX rm_token_transactions_by_human ON rm_token_transactions (human_id, position DESC);
