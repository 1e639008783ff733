-- Data sessions (DESIGN.md 4.2), kept across restarts: each node's part of a session (its
-- state machine, as JSON), the packets a sender has to send or a recipient took, how much of
-- each previous node's pay on its channel already counted for a session (so one payment
-- never counts for two), and the recipient's acknowledgments a relay passed back: each meets
-- the signature locks pre-locked on it, a relay's claim on chain when its payer vanished.
CREATE TABLE sessions (
    session BLOB PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE session_packets (
    session BLOB NOT NULL,
    idx INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (session, idx)
);
CREATE TABLE session_credit (
    peer BLOB PRIMARY KEY,
    -- Decimal wei, whole.
    credited TEXT NOT NULL
);
CREATE TABLE acks (
    condition_id BLOB PRIMARY KEY,
    signer BLOB NOT NULL,
    message_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    -- 1 once the watcher holds its registration.
    synced INTEGER NOT NULL DEFAULT 0
);
