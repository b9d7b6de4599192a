-- tokengate schema, version 2: two-phase redemption. An unused code or
-- refresh token may carry a claim: the holder's random id and when the
-- claim lapses (milliseconds since the Unix epoch, the gate's clock).

ALTER TABLE tokengate_codes
    ADD COLUMN holder        bytea,
    ADD COLUMN held_until_ms bigint;

ALTER TABLE tokengate_refresh_tokens
    ADD COLUMN holder        bytea,
    ADD COLUMN held_until_ms bigint;
