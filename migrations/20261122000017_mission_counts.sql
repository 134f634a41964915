-- Missions per problem and per solution, created and completed (problem feed and solutions).
ALTER TABLE rm_problems ADD COLUMN mission_count integer NOT NULL DEFAULT 0,
                        ADD COLUMN missions_completed integer NOT NULL DEFAULT 0;
ALTER TABLE rm_solutions ADD COLUMN mission_count integer NOT NULL DEFAULT 0,
                         ADD COLUMN missions_completed integer NOT NULL DEFAULT 0;
