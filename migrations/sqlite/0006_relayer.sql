-- The fees the relayer quoted: a request is relayed only with a fee at least its quote's,
-- before the quote expires.
CREATE TABLE relay_quotes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_address TEXT NOT NULL,
    target TEXT NOT NULL,
    data_hash BLOB NOT NULL,
    agent TEXT NOT NULL,
    gas BIGINT NOT NULL,
    -- The whole transaction's estimated gas: the relay's gas limit.
    estimated_gas BIGINT NOT NULL,
    fee TEXT NOT NULL,
    -- Unix seconds.
    expires_at BIGINT NOT NULL
);

-- Accepted requests, one per (from, nonce): a repeat gets the first answer. Amounts are
-- decimal strings, nonces 32-byte big-endian; times are unix milliseconds.
CREATE TABLE relays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_address TEXT NOT NULL,
    nonce BLOB NOT NULL,
    request_hash BLOB NOT NULL,
    agent TEXT NOT NULL,
    target TEXT NOT NULL,
    selector BLOB NOT NULL,
    fee TEXT NOT NULL,
    quote_id BIGINT NOT NULL,
    tx_id BIGINT NOT NULL,
    accepted_at BIGINT NOT NULL,
    -- Filled once the transaction is final.
    gas_used BIGINT,
    gas_price TEXT,
    mined_block BIGINT,
    succeeded BIGINT,
    settled_at BIGINT,
    UNIQUE (from_address, nonce)
);
CREATE INDEX relays_by_settlement ON relays (settled_at);

-- When each version of a transaction was broadcast, to the millisecond (latency figures).
ALTER TABLE sender_attempts ADD COLUMN sent_ms BIGINT;
