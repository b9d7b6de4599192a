-- tokengate schema, version 4: signed requests (client assertions, DPoP
-- proofs). Times are milliseconds since the Unix epoch, read from the
-- gate's clock.
--
-- The one-time values (`jti`) already used, each under its key (a SHA-256
-- digest of its kind, issuer and jti, never the jti as sent), until its
-- `until`. A row past it counts as gone (the next use of its key takes it
-- over) and is deleted by the store's sweep.
CREATE TABLE tokengate_replays (
    key      bytea PRIMARY KEY,
    until_ms bigint NOT NULL
);
CREATE INDEX tokengate_replays_until ON tokengate_replays (until_ms);

-- The DPoP nonce of each time slot, shared by every process, until its
-- `until`; an expired one gives way to the next candidate.
CREATE TABLE tokengate_nonces (
    slot     bigint PRIMARY KEY,
    nonce    text NOT NULL,
    until_ms bigint NOT NULL
);

-- What a client registered for signed requests (`ClientRecord`): its
-- token_endpoint_auth_method (RFC 7591; NULL: a secret by Basic or in the
-- body, or none for a public client), its public keys for private_key_jwt
-- ({"keys": [...]}), the secret itself for client_secret_jwt (an HMAC is
-- checked with the key, so this one is not a digest), and whether its
-- tokens must be DPoP-bound (RFC 9449 §5.2).
ALTER TABLE tokengate_clients
    ADD COLUMN token_endpoint_auth_method text,
    ADD COLUMN jwks                       jsonb,
    ADD COLUMN jwt_secret                 text,
    ADD COLUMN dpop_bound_access_tokens   boolean NOT NULL DEFAULT false;
