-- Peer votes on evidence (projection `evidence`): who voted on what, for the pending list and review.
CREATE TABLE rm_peer_votes (
    evidence_id uuid NOT NULL,
    reviewer    uuid NOT NULL,
    review_id   uuid NOT NULL UNIQUE,
    verdict     text NOT NULL,
    confidence  double precision NOT NULL,
    reasoning   text NOT NULL,
    cast_at     timestamptz NOT NULL,
    position    bigint NOT NULL,
    PRIMARY KEY (evidence_id, reviewer)
);
CREATE INDEX rm_peer_votes_by_reviewer ON rm_peer_votes (reviewer);
CREATE INDEX rm_evidence_in_review ON rm_evidence (submitted_at) WHERE stage = 'peer_review';

-- Appeals: the owner's reason, and the admin's resolution.
ALTER TABLE rm_evidence ADD COLUMN appeal_reason text, ADD COLUMN appeal_resolution jsonb;
CREATE INDEX rm_evidence_appealed ON rm_evidence (submitted_at) WHERE stage = 'appealed';
