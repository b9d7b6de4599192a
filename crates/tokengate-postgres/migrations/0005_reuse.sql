-- tokengate schema, version 5: the reuse window of rotated refresh tokens,
-- and the clients that may introspect.
-- When a token was used up (rotated away), by the gate's clock, and how
-- many reuses it was granted since.

ALTER TABLE tokengate_refresh_tokens
    ADD COLUMN used_at_ms bigint,
    ADD COLUMN reuses     integer NOT NULL DEFAULT 0;

-- RFC 7662: whether a client may ask the introspection endpoint.
ALTER TABLE tokengate_clients
    ADD COLUMN introspect boolean NOT NULL DEFAULT false;
