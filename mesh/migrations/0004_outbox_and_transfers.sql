-- Messages for a peer that was not reachable when they were signed: they go out in order at
-- the next meeting, and leave the outbox only once the transport took them. A crash between
-- signing and handing over loses nothing: the message is in the journal (sent) and here.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL,
    message BLOB NOT NULL
);
CREATE INDEX outbox_by_peer ON outbox (peer, seq);

-- Each mediated transfer this wallet takes part in (DESIGN.md 4.1), by its condition: the
-- protocol's TransferState, encoded by the mesh crate (routed.rs), written in the same step as
-- the channel message it follows from.
CREATE TABLE transfers (
    condition_id BLOB PRIMARY KEY,
    state BLOB NOT NULL
);
