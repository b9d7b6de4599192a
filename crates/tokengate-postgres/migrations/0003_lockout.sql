-- tokengate schema, version 3: the brute-force defences' failure counters.
-- One row per counter, keyed by its stable name (`CounterKey::name()`: a
-- kind, a peer address and a digest of the client id, never an id as
-- typed). A fixed window opens with the counter's first failure; times are
-- milliseconds since the Unix epoch, read from the gate's clock. A row
-- whose window ended counts as gone (the next failure starts it anew) and
-- is deleted by the store's sweep.

CREATE TABLE tokengate_lockout (
    key        text PRIMARY KEY,
    failures   integer NOT NULL,
    started_ms bigint NOT NULL,
    ends_ms    bigint NOT NULL
);
CREATE INDEX tokengate_lockout_ends ON tokengate_lockout (ends_ms);
