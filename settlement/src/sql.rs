//! Small helpers for SQL that both backends take through sqlx's `Any` driver: numbered
//! `$n` placeholders for bulk statements, and typed reads of stored columns.

use alloy::primitives::{Address, B256, U256};
use sqlx::{Row, any::AnyRow};

use crate::SettlementError;

/// Rows per bulk statement, in bound values: under SQLite's and Postgres' parameter limits.
pub(crate) const CHUNK: usize = 5_000;

/// `$start, $start+1, ...`: `count` placeholders.
pub(crate) fn placeholders(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, ..., $width), ($width+1, ...), ...`: `rows` value tuples for a bulk insert.
pub(crate) fn rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(1 + row * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stored(field: &str, value: impl std::fmt::Debug) -> SettlementError {
    SettlementError::Stored {
        field: field.to_owned(),
        value: format!("{value:?}"),
    }
}

pub(crate) fn b256(row: &AnyRow, index: usize) -> Result<B256, SettlementError> {
    let bytes: Vec<u8> = row.try_get(index)?;
    B256::try_from(bytes.as_slice()).map_err(|_| stored("bytes32", bytes))
}

pub(crate) fn address(row: &AnyRow, index: usize) -> Result<Address, SettlementError> {
    let text: String = row.try_get(index)?;
    text.parse().map_err(|_| stored("address", text))
}

/// The digits any uint256 fits in.
const U256_DIGITS: usize = 78;

/// `value` as a 78-digit zero-padded decimal: how amounts that SQL compares are stored, so
/// that text order is numeric order (migration 0007).
pub(crate) fn sortable(value: U256) -> String {
    format!("{:0>width$}", value.to_string(), width = U256_DIGITS)
}

/// A decimal uint256 (zero-padded or not).
pub(crate) fn u256(row: &AnyRow, index: usize) -> Result<U256, SettlementError> {
    let text: String = row.try_get(index)?;
    text.parse().map_err(|_| stored("amount", text))
}

/// A 32-byte big-endian uint256 (stored so, where SQL must compare them).
pub(crate) fn u256_be(row: &AnyRow, index: usize) -> Result<U256, SettlementError> {
    let bytes: Vec<u8> = row.try_get(index)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(U256::from_be_bytes)
        .map_err(|_| stored("nonce", bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_amounts_order_as_numbers_and_read_back_whole() {
        let values = [
            U256::ZERO,
            U256::from(9),
            U256::from(10),
            U256::MAX - U256::from(1),
            U256::MAX,
        ];
        for pair in values.windows(2) {
            assert!(sortable(pair[0]) < sortable(pair[1]), "{pair:?}");
        }
        for value in values {
            let text = sortable(value);
            assert_eq!(text.len(), U256_DIGITS);
            assert_eq!(text.parse::<U256>().unwrap(), value);
        }
    }

    #[test]
    fn numbers_placeholders_across_rows() {
        assert_eq!(placeholders(3, 2), "$3, $4");
        assert_eq!(rows(2, 2), "($1, $2), ($3, $4)");
    }
}
