-- Agent e-mail verification. The address is personal data: it lives here, never in an event; the
-- log records only that the agent verified (AgentVerified).
CREATE TABLE agent_contacts (
    agent_id    uuid PRIMARY KEY,
    email       text NOT NULL,
    verified_at timestamptz
);

-- The code in force (6 digits, stored as SHA-256 of agent id and code), its expiry, and how many
-- codes were sent in the current hour (at most 3).
CREATE TABLE agent_verification_codes (
    agent_id      uuid PRIMARY KEY,
    code_sha256   bytea NOT NULL,
    expires_at    timestamptz NOT NULL,
    window_start  timestamptz NOT NULL,
    sent_in_window integer NOT NULL
);

-- The development notifier's mailbox (`betterworld mailbox` reads it).
CREATE TABLE dev_mailbox (
    id        bigserial PRIMARY KEY,
    recipient text NOT NULL,
    subject   text NOT NULL,
    body      text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE rm_agents ADD COLUMN claim_status text NOT NULL DEFAULT 'pending';
