-- ProblemReported v2 records the problem's language (v1 events are upcast to `en`,
-- domain/src/upcast.rs). The problem feed projection is version 2: `project` rebuilds it at start-up.
ALTER TABLE rm_problems ADD COLUMN language text NOT NULL DEFAULT 'en';
