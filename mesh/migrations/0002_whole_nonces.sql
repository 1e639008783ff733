-- Nonces are uint256: a payer may sign any nonce above the last. They were INTEGER (i64), and
-- a nonce above i64 was stored as -1. From now on they are 78-digit zero-padded decimals
-- (78 digits hold any uint256), so that text order is numeric order in SQL and nothing is cut.
-- Rows whose nonce was cut are repaired from the proof they carry when the journal opens.
CREATE TABLE sent_v2 (
    channel_id BLOB NOT NULL,
    nonce TEXT NOT NULL,
    transferred TEXT NOT NULL,
    proof BLOB NOT NULL,
    PRIMARY KEY (channel_id, nonce)
);
INSERT INTO sent_v2 (channel_id, nonce, transferred, proof)
    SELECT channel_id, CASE WHEN nonce < 0 THEN 'cut:' || rowid ELSE substr('000000000000000000000000000000000000000000000000000000000000000000000000000000' || nonce, -78, 78) END,
           transferred, proof FROM sent;
DROP TABLE sent;
ALTER TABLE sent_v2 RENAME TO sent;

CREATE TABLE received_v2 (
    channel_id BLOB NOT NULL,
    nonce TEXT NOT NULL,
    transferred TEXT NOT NULL,
    proof BLOB NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    ack BLOB,
    PRIMARY KEY (channel_id, nonce)
);
INSERT INTO received_v2 (channel_id, nonce, transferred, proof, synced, ack)
    SELECT channel_id, CASE WHEN nonce < 0 THEN 'cut:' || rowid ELSE substr('000000000000000000000000000000000000000000000000000000000000000000000000000000' || nonce, -78, 78) END,
           transferred, proof, synced, ack FROM received;
DROP TABLE received;
ALTER TABLE received_v2 RENAME TO received;
