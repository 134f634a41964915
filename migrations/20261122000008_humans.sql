-- Humans (ADR 0003). Personal data reaches events only sealed with the person's key; the keys,
-- credentials and sessions live in these command-side tables, never in the log.

-- One data key per person. Forgetting destroys the key (key NULL, destroyed_at set): every sealed
-- field of that person in the log becomes unreadable while the log itself stays intact.
CREATE TABLE person_keys (
    person_id    uuid PRIMARY KEY,
    key          bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((key IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK (key IS NULL OR octet_length(key) = 32)
);

-- Credentials: the e-mail's keyed fingerprint (uniqueness and login lookup without plaintext), the
-- Argon2id hash, the role, and the login lockout state. Deleted when the person is forgotten, so
-- the address can register again.
CREATE TABLE human_credentials (
    human_id          uuid PRIMARY KEY,
    email_hmac        bytea NOT NULL,
    password_hash     text NOT NULL,
    role              text NOT NULL CHECK (role IN ('human', 'admin', 'auditor')),
    email_verified_at timestamptz,
    failed_logins     integer NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT human_credentials_email_key UNIQUE (email_hmac)
);

-- The e-mail verification code in force, as for agents.
CREATE TABLE human_verification_codes (
    human_id       uuid PRIMARY KEY,
    code_sha256    bytea NOT NULL,
    expires_at     timestamptz NOT NULL,
    window_start   timestamptz NOT NULL,
    sent_in_window integer NOT NULL
);

-- Refresh tokens (30 days), stored as SHA-256. Each refresh marks its token used and issues the
-- next one in the same family; presenting a used or revoked token again revokes the whole family
-- (a stolen token was replayed).
CREATE TABLE refresh_tokens (
    token_sha256 bytea PRIMARY KEY,
    human_id     uuid NOT NULL,
    family_id    uuid NOT NULL,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_human ON refresh_tokens (human_id);

-- HS256 signing keys of access tokens. The current key is the newest with retires_at NULL; a
-- rotation gives the others a grace period (retires_at) so tokens they signed stay valid until
-- they expire. Shared by every gateway instance.
CREATE TABLE jwt_signing_keys (
    kid        text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (octet_length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    retires_at timestamptz
);

-- Secrets the platform generates for itself on first use when none is configured (e.g. the key of
-- e-mail fingerprints), so every instance and every restart uses the same one.
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The human read model. Personal fields stay sealed here too and are opened at read time with the
-- person's key: once the key is destroyed, every read shows the person as forgotten at once,
-- before the projector has even seen HumanForgotten.
CREATE TABLE rm_humans (
    human_id          uuid PRIMARY KEY,
    role              text NOT NULL,
    display_name      jsonb,
    email             jsonb,
    email_verified    boolean NOT NULL DEFAULT false,
    skills            text[] NOT NULL DEFAULT '{}',
    languages         text[] NOT NULL DEFAULT '{}',
    city              text,
    country           text,
    location          jsonb,
    service_radius_km integer NOT NULL DEFAULT 10,
    bio               jsonb,
    registered_at     timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    forgotten_at      timestamptz,
    position          bigint NOT NULL
);

-- Admin overrides of agents' rate limits (requests per minute), projected from AgentRateLimitSet.
ALTER TABLE rm_agents ADD COLUMN rate_limit_override integer;
