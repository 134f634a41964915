-- The optional LLM judge's spend per UTC day (calls and cents), shared by every guardrail instance;
-- over the daily budget content is flagged for an admin instead of judged.
CREATE TABLE llm_spend (
    day   date PRIMARY KEY,
    calls integer NOT NULL,
    cents bigint NOT NULL
);
