-- The phone's journal: its channels, every proof it signed (written before the proof leaves
-- the device), every proof it received, and the withdrawals it signed. Amounts are decimal
-- strings (uint256); times are unix seconds.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE channels (
    channel_id BLOB PRIMARY KEY,
    partner TEXT NOT NULL,
    state TEXT NOT NULL,
    settle_timeout INTEGER NOT NULL,
    my_deposit TEXT NOT NULL,
    my_withdrawn TEXT NOT NULL,
    partner_deposit TEXT NOT NULL,
    partner_withdrawn TEXT NOT NULL,
    -- Set after this wallet signs a close, a withdraw or a cooperative settle: no payment
    -- moves either way until it lands or its deadline passes.
    frozen_reason TEXT,
    frozen_until INTEGER
);

CREATE TABLE sent (
    channel_id BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    transferred TEXT NOT NULL,
    proof BLOB NOT NULL,
    PRIMARY KEY (channel_id, nonce)
);

CREATE TABLE received (
    channel_id BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    transferred TEXT NOT NULL,
    proof BLOB NOT NULL,
    -- 1 once the watcher holds it (or a newer one); its signed acknowledgment when it gave one.
    synced INTEGER NOT NULL DEFAULT 0,
    ack BLOB,
    PRIMARY KEY (channel_id, nonce)
);

-- Withdrawals this wallet signed, for itself or for its partner, until their deadline.
CREATE TABLE withdrawals (
    channel_id BLOB NOT NULL,
    participant TEXT NOT NULL,
    total TEXT NOT NULL,
    deadline INTEGER NOT NULL
);
