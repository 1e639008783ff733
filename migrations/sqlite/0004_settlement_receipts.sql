-- The best (highest-nonce) proof each payer signed per channel that phones uploaded, with the
-- receiver's Watch authorizing this watcher to submit it. Amounts are decimal strings; nonces
-- are 32-byte big-endian, so that byte order is numeric order in SQL on both backends.
CREATE TABLE receipts (
    channel_id BLOB NOT NULL,
    signer TEXT NOT NULL,
    nonce BLOB NOT NULL,
    transferred_amount TEXT NOT NULL,
    proof_digest BLOB NOT NULL,
    proof BLOB NOT NULL,
    watcher TEXT NOT NULL,
    reward TEXT NOT NULL,
    watch_deadline TEXT NOT NULL,
    watch_signature BLOB NOT NULL,
    PRIMARY KEY (channel_id, signer)
);

-- The latest proof each phone signed itself per channel, uploaded as a backup: what a phone
-- restored from an old backup asks for before it closes (its claim must cover it).
CREATE TABLE proof_backups (
    channel_id BLOB NOT NULL,
    signer TEXT NOT NULL,
    nonce BLOB NOT NULL,
    transferred_amount TEXT NOT NULL,
    proof BLOB NOT NULL,
    PRIMARY KEY (channel_id, signer)
);
