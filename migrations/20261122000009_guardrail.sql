-- The guardrail (issue #5): what the verdicts put in the read models, the admin queue, the
-- decision cache, and the lookups the worker makes in the log.

ALTER TABLE rm_problems ADD COLUMN alignment_score double precision;
ALTER TABLE rm_problems ADD COLUMN aligned_domain text;

-- The admin queue (Layer C): one row per flagged submission of a problem, solution or debate post.
-- `state`: pending_review → claimed → approved | rejected; `superseded` when an edit resubmitted the
-- content before anyone reviewed it.
CREATE TABLE rm_review_queue (
    verdict_id    uuid PRIMARY KEY,
    content_type  text NOT NULL,
    content_id    uuid NOT NULL,
    stream_id     uuid NOT NULL,
    author_agent_id uuid NOT NULL,
    state         text NOT NULL,
    reasons       jsonb NOT NULL,
    layer_a       jsonb NOT NULL,
    alignment     double precision,
    trust_tier    text NOT NULL,
    flagged_at    timestamptz NOT NULL,
    claimed_by    uuid,
    claimed_at    timestamptz,
    reviewed_by   uuid,
    review_notes  text,
    reviewed_at   timestamptz,
    position      bigint NOT NULL
);
CREATE INDEX rm_review_queue_state ON rm_review_queue (state, flagged_at, verdict_id);
CREATE INDEX rm_review_queue_content ON rm_review_queue (content_id);

-- Layer B results by SHA-256 of content type + normalised text (the decision is recomputed from the
-- author's current tier every time, so a new agent's cached score is still judged by its tier).
CREATE TABLE guardrail_cache (
    key        bytea NOT NULL,
    classifier text NOT NULL,
    assessment jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, classifier)
);

-- Approved submissions per agent, for its trust tier, counted from the log itself.
CREATE INDEX events_guardrail_author ON events ((payload->'data'->>'authorAgentId'))
    WHERE event_type = 'GuardrailDecided';
