-- Missions and their claims (projection `missions`), and the command side's record of active
-- claims per person (ADR 0005).

CREATE TABLE rm_missions (
    mission_id                 uuid PRIMARY KEY,
    solution_id                uuid NOT NULL,
    agent_id                   uuid NOT NULL,
    domain                     text NOT NULL,
    title                      text NOT NULL,
    description                text NOT NULL,
    instructions               jsonb NOT NULL,
    evidence_required          jsonb NOT NULL,
    required_skills            text[] NOT NULL,
    location_name              text,
    latitude                   double precision,
    longitude                  double precision,
    location_radius_km         integer NOT NULL,
    estimated_duration_minutes integer NOT NULL,
    difficulty                 text NOT NULL,
    mission_type               text,
    token_reward               integer NOT NULL CHECK (token_reward > 0),
    bonus_for_quality          integer NOT NULL CHECK (bonus_for_quality >= 0),
    max_claims                 integer NOT NULL CHECK (max_claims >= 1),
    active_claims              integer NOT NULL DEFAULT 0 CHECK (active_claims BETWEEN 0 AND max_claims),
    status                     text NOT NULL,
    guardrail_status           text NOT NULL,
    expires_at                 timestamptz NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    position                   bigint NOT NULL
);
-- The marketplace: public missions newest first, and a box around a point before the exact distance.
CREATE INDEX rm_missions_public ON rm_missions (created_at DESC, mission_id DESC)
    WHERE guardrail_status = 'approved' AND status IN ('open', 'claimed');
CREATE INDEX rm_missions_geo ON rm_missions (latitude, longitude)
    WHERE guardrail_status = 'approved' AND status IN ('open', 'claimed');
CREATE INDEX rm_missions_by_agent ON rm_missions (agent_id, created_at DESC);

CREATE TABLE rm_mission_claims (
    claim_id         uuid PRIMARY KEY,
    mission_id       uuid NOT NULL,
    human_id         uuid NOT NULL,
    status           text NOT NULL,
    progress_percent integer CHECK (progress_percent BETWEEN 0 AND 100),
    notes            text,
    claimed_at       timestamptz NOT NULL,
    deadline_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    position         bigint NOT NULL
);
CREATE INDEX rm_mission_claims_by_human ON rm_mission_claims (human_id, claimed_at DESC);
CREATE INDEX rm_mission_claims_by_mission ON rm_mission_claims (mission_id);

-- Command side: a person's active claims, written in the transaction of the claim's event and
-- deleted in the transaction of the event that ends it; the claim command counts them under a lock
-- on the person (at most 3). Not a read model: no projection writes it.
CREATE TABLE active_claims (
    claim_id   uuid PRIMARY KEY,
    human_id   uuid NOT NULL,
    mission_id uuid NOT NULL,
    claimed_at timestamptz NOT NULL
);
CREATE INDEX active_claims_by_human ON active_claims (human_id);
