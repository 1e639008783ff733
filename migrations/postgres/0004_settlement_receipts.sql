-- The best (highest-nonce) proof each payer signed per channel that phones uploaded, with the
-- receiver's Watch authorizing this watcher to submit it. Amounts are decimal strings.
CREATE TABLE receipts (
    channel_id BYTEA NOT NULL,
    signer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    transferred_amount TEXT NOT NULL,
    proof_digest BYTEA NOT NULL,
    proof BYTEA NOT NULL,
    watcher TEXT NOT NULL,
    reward TEXT NOT NULL,
    watch_deadline TEXT NOT NULL,
    watch_signature BYTEA NOT NULL,
    PRIMARY KEY (channel_id, signer)
);
