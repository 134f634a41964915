-- The public feed filtered by domain (`GET /problems?domain=…`, the original plan's browsing load):
-- newest first within the domain, without stepping over the other domains' rows of the feed index
-- (docs/benchmarks.md, S7).
CREATE INDEX rm_problems_feed_domain ON rm_problems (domain, reported_at DESC, problem_id DESC)
    WHERE guardrail_status = 'approved';
