-- The optional vision model (docs/verification.md): its assessment in the evidence read model, and one
-- daily spend table for every paid model call, by purpose (`guardrail`: the LLM judge, `vision`: the
-- evidence vision model), shared by every instance. It replaces `llm_spend` (its rows move over).
ALTER TABLE rm_evidence ADD COLUMN vision jsonb;

CREATE TABLE model_spend (
    purpose text NOT NULL,
    day     date NOT NULL,
    calls   integer NOT NULL,
    cents   bigint NOT NULL,
    PRIMARY KEY (purpose, day)
);
INSERT INTO model_spend (purpose, day, calls, cents) SELECT 'guardrail', day, calls, cents FROM llm_spend;
DROP TABLE llm_spend;
