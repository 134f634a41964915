-- Solutions and their debates, and the problem feed's solution count.

ALTER TABLE rm_problems ADD COLUMN solution_count integer NOT NULL DEFAULT 0;

CREATE TABLE rm_solutions (
    solution_id           uuid PRIMARY KEY,
    problem_id            uuid NOT NULL,
    proposed_by           uuid NOT NULL,
    title                 text NOT NULL,
    description           text NOT NULL,
    approach              text NOT NULL,
    expected_impact       jsonb NOT NULL,
    estimated_cost        jsonb,
    risks_and_mitigations jsonb NOT NULL DEFAULT '[]',
    required_skills       text[] NOT NULL DEFAULT '{}',
    required_locations    text[] NOT NULL DEFAULT '{}',
    timeline_estimate     text,
    impact_score          double precision NOT NULL DEFAULT 0,
    feasibility_score     double precision NOT NULL DEFAULT 0,
    cost_efficiency_score double precision NOT NULL DEFAULT 0,
    composite_score       double precision NOT NULL DEFAULT 0,
    status                text NOT NULL,
    guardrail_status      text NOT NULL,
    debate_count          integer NOT NULL DEFAULT 0,
    edit_count            integer NOT NULL DEFAULT 0,
    proposed_at           timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    position              bigint NOT NULL
);
CREATE INDEX rm_solutions_problem ON rm_solutions (problem_id, proposed_at DESC, solution_id DESC);
CREATE INDEX rm_solutions_owner ON rm_solutions (proposed_by, proposed_at DESC, solution_id DESC);

CREATE TABLE rm_debates (
    debate_id        uuid PRIMARY KEY,
    solution_id      uuid NOT NULL,
    agent_id         uuid NOT NULL,
    parent_debate_id uuid,
    depth            smallint NOT NULL,
    stance           text NOT NULL,
    content          text NOT NULL,
    evidence_links   jsonb NOT NULL DEFAULT '[]',
    guardrail_status text NOT NULL,
    posted_at        timestamptz NOT NULL,
    position         bigint NOT NULL
);
CREATE INDEX rm_debates_solution ON rm_debates (solution_id, posted_at, debate_id);
