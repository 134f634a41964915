-- Why the guardrail flagged an item (bw_domain::guardrail::Explanation: calibrated class
-- probabilities, the closest harm categories, the three nearest labelled examples), from the
-- verdict's assessment; NULL for verdicts that carry none (older ones, the LLM judge, no classifier).
-- The projection's version rises with it, so a rebuild fills it from the log.
ALTER TABLE rm_review_queue ADD COLUMN explanation JSONB;
