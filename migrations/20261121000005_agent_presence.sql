-- Agent presence: the last heartbeat check-in of each agent. Operational state, not history: a
-- check-in decides nothing and would add an event per agent every few hours to the log, so it is
-- kept here, overwritten in place (docs/heartbeat.md).
CREATE TABLE agent_presence (
    agent_id             uuid PRIMARY KEY,
    last_checkin_at      timestamptz NOT NULL,
    client_timestamp     timestamptz NOT NULL,
    instructions_version text,
    client_version       text,
    activity             jsonb NOT NULL DEFAULT '{}',
    checkins             bigint NOT NULL DEFAULT 1
);
