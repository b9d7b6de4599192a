-- tokengate schema, version 1. Times are milliseconds since the Unix epoch,
-- read from the gate's clock; keys are SHA-256 digests of the secret values.

CREATE TABLE tokengate_clients (
    client_id       text PRIMARY KEY,
    public          boolean NOT NULL,
    secret_digests  text[] NOT NULL DEFAULT '{}',
    redirect_uris   text[] NOT NULL DEFAULT '{}',
    redirect_policy text NOT NULL DEFAULT 'exact',
    grant_types     text[] NOT NULL,
    scopes          text[]
);

CREATE TABLE tokengate_codes (
    key           bytea PRIMARY KEY,
    record        jsonb NOT NULL,
    uses          integer NOT NULL DEFAULT 0,
    expires_at_ms bigint NOT NULL
);
CREATE INDEX tokengate_codes_expiry ON tokengate_codes (expires_at_ms);

CREATE TABLE tokengate_refresh_tokens (
    key           bytea PRIMARY KEY,
    family        text NOT NULL,
    record        jsonb NOT NULL,
    uses          integer NOT NULL DEFAULT 0,
    expires_at_ms bigint NOT NULL
);
CREATE INDEX tokengate_refresh_tokens_family ON tokengate_refresh_tokens (family);
CREATE INDEX tokengate_refresh_tokens_expiry ON tokengate_refresh_tokens (expires_at_ms);

CREATE TABLE tokengate_revoked_families (
    family      text PRIMARY KEY,
    until_ms    bigint NOT NULL
);

CREATE TABLE tokengate_devices (
    key           bytea PRIMARY KEY,
    user_code     text NOT NULL UNIQUE,
    record        jsonb NOT NULL,
    expires_at_ms bigint NOT NULL
);
CREATE INDEX tokengate_devices_expiry ON tokengate_devices (expires_at_ms);
