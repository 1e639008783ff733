//! Amounts of SMT as people and apps write them (`1.5`), in SMT wei: whole or refused, never
//! rounded; and back.

use alloy::primitives::{
    U256,
    utils::{format_units, parse_units},
};

use crate::MeshError;

/// SMT's decimals.
const DECIMALS: u8 = 18;

/// Reads an amount of SMT with decimals given as `field`, in wei.
pub fn parse_smt(field: &str, text: &str) -> Result<U256, MeshError> {
    let text = text.trim();
    let refuse = |why: String| Err(MeshError::InvalidAmount(format!("{field} {text:?} {why}")));
    if text.starts_with('-') {
        return refuse("is negative: amounts of SMT are zero or more".into());
    }
    if let Some((_, decimals)) = text.split_once('.')
        && decimals.len() > usize::from(DECIMALS)
    {
        return refuse(format!(
            "is finer than one wei: SMT has 18 decimals ({} given)",
            decimals.len()
        ));
    }
    let valid = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1
        && text.chars().any(|c| c.is_ascii_digit());
    if !valid {
        return refuse("is not an amount of SMT (decimals allowed: 1.5)".into());
    }
    match parse_units(text, DECIMALS) {
        Ok(value) => Ok(value.into()),
        Err(e) => refuse(format!("is not an amount of SMT: {e}")),
    }
}

/// Reads an amount that must move something: above zero.
pub fn parse_positive_smt(field: &str, text: &str) -> Result<U256, MeshError> {
    let value = parse_smt(field, text)?;
    if value.is_zero() {
        return Err(MeshError::InvalidAmount(format!(
            "{field} {:?} is zero: pay at least one wei (0.000000000000000001)",
            text.trim()
        )));
    }
    Ok(value)
}

/// Writes an amount of wei as SMT, exactly, without trailing zeros (`12.5`, `100`).
pub fn format_smt(amount: U256) -> String {
    let text = format_units(amount, DECIMALS).unwrap_or_else(|_| amount.to_string());
    match text.split_once('.') {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        },
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_wei_or_refused_and_written_back_exactly() {
        let wei = parse_smt("amount", "12.000000000000000001").unwrap();
        assert_eq!(wei, U256::from(12_000_000_000_000_000_001u128));
        assert_eq!(format_smt(wei), "12.000000000000000001");
        assert_eq!(format_smt(parse_smt("amount", " 100 ").unwrap()), "100");
        assert_eq!(format_smt(parse_smt("amount", ".5").unwrap()), "0.5");
        for (text, why) in [
            ("-1", "is negative"),
            ("1.0000000000000000001", "finer than one wei"),
            ("1.2.3", "is not an amount of SMT"),
            ("", "is not an amount of SMT"),
            (".", "is not an amount of SMT"),
            ("1e3", "is not an amount of SMT"),
        ] {
            let error = parse_smt("amount", text).unwrap_err().to_string();
            assert!(error.starts_with(&format!("amount {:?} ", text)), "{error}");
            assert!(error.contains(why), "{text}: {error}");
        }
        let zero = parse_positive_smt("amount", "0.0").unwrap_err().to_string();
        assert!(zero.contains("is zero"), "{zero}");
        let huge = format!("{}", U256::MAX);
        assert!(
            parse_smt("amount", &huge).is_err(),
            "above 2^256 - 1 wei: refused"
        );
    }
}
