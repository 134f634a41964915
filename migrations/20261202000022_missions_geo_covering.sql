-- Nearby search reads its candidates from the index alone (docs/benchmarks.md, P5): the box around
-- the point, with every column the search filters, ranks or pages on, so that only the page's rows
-- are fetched from the table. With 1M missions a 25 km search read ~1,000 heap pages (8 ms) before.
DROP INDEX rm_missions_geo;
CREATE INDEX rm_missions_geo ON rm_missions (latitude, longitude)
    INCLUDE (expires_at, created_at, mission_id, token_reward, domain, difficulty,
             estimated_duration_minutes, required_skills)
    WHERE guardrail_status = 'approved' AND status IN ('open', 'claimed');
