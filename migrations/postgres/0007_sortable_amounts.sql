-- The watcher keeps, per payer, the proof with the highest transferred amount and lets a Watch
-- with a later deadline replace an earlier one; its upserts compare both in SQL. They are
-- stored from now on as 78-digit zero-padded decimals (78 digits hold any uint256), compared
-- byte by byte (collation "C"), so that text order is numeric order whatever the database's
-- collation. Readers parse them as decimals, leading zeros and all.
ALTER TABLE receipts
    ALTER COLUMN transferred_amount TYPE TEXT COLLATE "C",
    ALTER COLUMN watch_deadline TYPE TEXT COLLATE "C";
ALTER TABLE proof_backups
    ALTER COLUMN transferred_amount TYPE TEXT COLLATE "C";
UPDATE receipts SET
    transferred_amount = lpad(transferred_amount, 78, '0'),
    watch_deadline = lpad(watch_deadline, 78, '0');
UPDATE proof_backups SET
    transferred_amount = lpad(transferred_amount, 78, '0');
