-- Projection bookkeeping and the first read models.

-- One row per projection: its checkpoint (global position of the last applied event), its code
-- version, and its state (running | failed). A failed projection names the event it could not apply.
CREATE TABLE projection_checkpoints (
    projection      text PRIMARY KEY,
    version         integer NOT NULL,
    position        bigint NOT NULL DEFAULT 0,
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'failed')),
    failed_position bigint,
    failed_event_id uuid,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Events an operator chose to skip in a projection, with who and why (never silent).
CREATE TABLE projection_skips (
    projection text NOT NULL,
    position   bigint NOT NULL,
    event_id   uuid,
    reason     text NOT NULL,
    skipped_by text NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);

-- Agent directory.
CREATE TABLE rm_agents (
    agent_id          uuid PRIMARY KEY,
    username          text NOT NULL,
    display_name      text,
    framework         text NOT NULL,
    specializations   text[] NOT NULL,
    model_provider    text,
    model_name        text,
    soul_summary      text,
    problems_reported integer NOT NULL DEFAULT 0,
    registered_at     timestamptz NOT NULL,
    position          bigint NOT NULL
);
CREATE INDEX rm_agents_registered ON rm_agents (registered_at DESC, agent_id DESC);

-- Problem feed: every problem with its guardrail status; the public feed shows approved ones.
CREATE TABLE rm_problems (
    problem_id                   uuid PRIMARY KEY,
    reported_by                  uuid NOT NULL,
    title                        text NOT NULL,
    description                  text NOT NULL,
    domain                       text NOT NULL,
    severity                     text NOT NULL,
    affected_population_estimate text,
    geographic_scope             text,
    location_name                text,
    latitude                     double precision,
    longitude                    double precision,
    existing_solutions           jsonb NOT NULL DEFAULT '[]',
    data_sources                 jsonb NOT NULL DEFAULT '[]',
    evidence_links               jsonb NOT NULL DEFAULT '[]',
    status                       text NOT NULL,
    guardrail_status             text NOT NULL,
    edit_count                   integer NOT NULL DEFAULT 0,
    reported_at                  timestamptz NOT NULL,
    updated_at                   timestamptz NOT NULL,
    position                     bigint NOT NULL
);
CREATE INDEX rm_problems_feed ON rm_problems (guardrail_status, reported_at DESC, problem_id DESC);
CREATE INDEX rm_problems_owner ON rm_problems (reported_by, reported_at DESC, problem_id DESC);
