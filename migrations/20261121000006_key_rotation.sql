-- API key rotation: a rotated-out key keeps working until expires_at (24 h); the current key has none.
ALTER TABLE agent_credentials ADD COLUMN expires_at timestamptz;
