-- Wrong guesses per verification code: after 5 the code is void and a new one must be requested, so
-- the million possible codes cannot be tried within a code's 15 minutes.
ALTER TABLE agent_verification_codes ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE human_verification_codes ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0;
