-- The transaction sender's own nonce book: the next nonce each signer key will use.
CREATE TABLE sender_nonces (
    signer TEXT PRIMARY KEY,
    next_nonce BIGINT NOT NULL
);

-- One row per transaction payload, with the nonce it was given for good.
CREATE TABLE sender_transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signer TEXT NOT NULL,
    nonce BIGINT NOT NULL,
    to_address TEXT NOT NULL,
    input BLOB NOT NULL,
    value TEXT NOT NULL,
    gas_limit BIGINT NOT NULL,
    status TEXT NOT NULL,
    mined_hash BLOB,
    mined_block BIGINT,
    succeeded BIGINT,
    -- Why a node refused the payload for good; its nonce then carries a 0-value self-transfer
    -- so the key's later transactions are not stuck behind a gap.
    failure TEXT, -- 1 or 0; BIGINT because sqlx's Any driver maps no SQLite boolean
    UNIQUE (signer, nonce)
);

-- Every signed version of a transaction, stored before it is broadcast.
CREATE TABLE sender_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id BIGINT NOT NULL REFERENCES sender_transactions (id),
    tx_hash BLOB NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
