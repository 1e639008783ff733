-- Messages from a partner the wallet cannot take yet: a LockExpired that needs a registry
-- read the phone, offline, cannot make, and whatever that partner sent after it (each proof
-- follows the one before). They are taken in order once the chain can be read; refusing them
-- instead would stall the channel, since the partner has moved on.
CREATE TABLE held_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL,
    message BLOB NOT NULL
);
CREATE INDEX held_messages_by_peer ON held_messages (peer, seq);
