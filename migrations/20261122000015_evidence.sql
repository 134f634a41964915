-- Evidence: the command side's index of file hashes (exact duplicates across submissions), written
-- in the submission's transaction, and the read model of submissions (projection `evidence`).

CREATE TABLE evidence_files (
    sha256      text NOT NULL,
    evidence_id uuid NOT NULL,
    file_index  integer NOT NULL,
    PRIMARY KEY (sha256, evidence_id, file_index)
);

CREATE TABLE rm_evidence (
    evidence_id     uuid PRIMARY KEY,
    mission_id      uuid NOT NULL,
    claim_id        uuid NOT NULL,
    human_id        uuid NOT NULL,
    files           jsonb NOT NULL,
    latitude        double precision,
    longitude       double precision,
    location_source text,
    captured_at     timestamptz,
    exif            jsonb NOT NULL,
    notes           text,
    stage           text NOT NULL,
    checks          jsonb,
    confidence      double precision,
    final_confidence double precision,
    submitted_at    timestamptz NOT NULL,
    position        bigint NOT NULL
);
CREATE INDEX rm_evidence_by_mission_human ON rm_evidence (mission_id, human_id, submitted_at DESC);
