-- Issue 15: the guardrail's cost per submission no longer grows with the log, and any number of
-- judges share its work.

-- Submissions waiting for a verdict, one row per submission event. The guardrail's intake (a
-- projector: exactly once per event, in log order) inserts them; a judge claims rows with
-- `FOR UPDATE SKIP LOCKED`, records the verdict through the content's aggregate (which keeps one
-- verdict per submission) and deletes the row. A row that cannot be judged stays, with its error,
-- and is tried again after `not_before`.
CREATE TABLE guardrail_queue (
    global_position bigint PRIMARY KEY,
    event_id        uuid NOT NULL,
    submitted_at    timestamptz NOT NULL,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT '-infinity',
    last_error      text
);

-- The trust tier's facts per agent (`projections::models::trust`): approvals by the guardrail, and
-- by an admin reviewing a flagged verdict on the agent's content.
CREATE TABLE rm_agent_trust (
    agent_id  uuid PRIMARY KEY,
    approvals bigint NOT NULL,
    position  bigint NOT NULL
);

-- Flagged content awaiting an admin, with its author: the review's approval counts for the author.
CREATE TABLE rm_trust_flagged (
    content_id uuid PRIMARY KEY,
    author     uuid NOT NULL,
    position   bigint NOT NULL
);

-- Only the old per-verdict count of approvals read it; every GuardrailDecided paid for it.
DROP INDEX IF EXISTS events_guardrail_author;
