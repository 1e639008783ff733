//! What a relay costs the user: the gas it will take, at the fee per gas the relayer may pay,
//! converted to SMT at the configured rate, with the relayer's markup, rounded up. The rate
//! comes from the command line (a fixed rate, for testnets) or from a file that a price feed
//! rewrites, which must not be older than a bound.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::primitives::{
    U256,
    utils::{format_units, parse_units},
};
use serde::Deserialize;

use crate::RelayerError;

/// One SMT per ETH, as a fixed-point rate with 18 decimals.
pub const ONE: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// Where the SMT/ETH rate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateSource {
    /// A fixed rate: SMT (in SMT wei) per ETH (in wei), 18 decimals.
    Fixed(U256),
    /// A JSON file `{"smtPerEth": "1234.5", "updatedAt": <unix seconds>}`, read at every
    /// quote, refused when older than `max_age`.
    File {
        /// The file.
        path: PathBuf,
        /// The oldest `updatedAt` accepted.
        max_age: Duration,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateFile {
    smt_per_eth: String,
    updated_at: u64,
}

impl RateSource {
    /// A fixed rate from its decimal form (`"1000"`, `"0.25"`).
    pub fn fixed(decimal: &str) -> Result<Self, RelayerError> {
        Ok(Self::Fixed(parse_rate(decimal)?))
    }

    /// The current rate, 18 decimals.
    pub fn rate(&self) -> Result<U256, RelayerError> {
        match self {
            Self::Fixed(rate) => Ok(*rate),
            Self::File { path, max_age } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    RelayerError::Rate(format!("cannot read {}: {e}", path.display()))
                })?;
                let file: RateFile = serde_json::from_str(&text).map_err(|e| {
                    RelayerError::Rate(format!("{} does not parse: {e}", path.display()))
                })?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs());
                let age = now.saturating_sub(file.updated_at);
                if age > max_age.as_secs() {
                    return Err(RelayerError::Rate(format!(
                        "the SMT/ETH rate is {age} s old, more than the {} s allowed",
                        max_age.as_secs()
                    )));
                }
                parse_rate(&file.smt_per_eth)
            }
        }
    }
}

fn parse_rate(decimal: &str) -> Result<U256, RelayerError> {
    let rate: U256 = parse_units(decimal, 18)
        .map_err(|e| RelayerError::Rate(format!("{decimal:?} is not a decimal rate: {e}")))?
        .into();
    if rate.is_zero() {
        return Err(RelayerError::Rate(
            "the SMT/ETH rate must be above zero".into(),
        ));
    }
    Ok(rate)
}

/// The rate in its decimal form, for answers.
pub(crate) fn format_rate(rate: U256) -> String {
    format_units(rate, 18).unwrap_or_else(|_| rate.to_string())
}

/// The fee in SMT wei for `gas` at `max_fee_per_gas` wei, at `rate` (18 decimals) with a
/// markup in basis points, rounded up so the relayer never undercharges by rounding.
pub fn fee(
    gas: u64,
    max_fee_per_gas: u128,
    rate: U256,
    markup_bps: u32,
) -> Result<U256, RelayerError> {
    let overflow = || RelayerError::Rate("the fee overflows".into());
    let numerator = U256::from(gas)
        .checked_mul(U256::from(max_fee_per_gas))
        .and_then(|wei| wei.checked_mul(rate))
        .and_then(|scaled| scaled.checked_mul(U256::from(10_000 + u64::from(markup_bps))))
        .ok_or_else(overflow)?;
    let denominator = ONE * U256::from(10_000);
    Ok(numerator.div_ceil(denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fee_is_gas_times_price_times_rate_plus_markup_rounded_up() {
        let rate = RateSource::fixed("1000").unwrap().rate().unwrap();
        // 100,000 gas at 2 gwei = 0.0002 ETH = 0.2 SMT; with 10% markup 0.22 SMT.
        assert_eq!(
            fee(100_000, 2_000_000_000, rate, 1_000).unwrap(),
            U256::from(220_000_000_000_000_000u128)
        );
        // A rate below one wei per wei still rounds up to a whole SMT wei.
        let tiny = RateSource::fixed("0.000000000000000001")
            .unwrap()
            .rate()
            .unwrap();
        assert_eq!(fee(1, 1, tiny, 0).unwrap(), U256::from(1));
        assert!(
            fee(u64::MAX, u128::MAX, U256::MAX, 0).is_err(),
            "overflow is an error"
        );
    }

    #[test]
    fn a_rate_file_older_than_its_bound_is_refused() {
        let path = std::env::temp_dir().join(format!("smartmesh-rate-{}.json", std::process::id()));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let source = RateSource::File {
            path: path.clone(),
            max_age: Duration::from_secs(60),
        };
        std::fs::write(
            &path,
            format!("{{\"smtPerEth\": \"2.5\", \"updatedAt\": {now}}}"),
        )
        .unwrap();
        assert_eq!(
            source.rate().unwrap(),
            U256::from(2_500_000_000_000_000_000u128)
        );
        std::fs::write(
            &path,
            format!("{{\"smtPerEth\": \"2.5\", \"updatedAt\": {}}}", now - 600),
        )
        .unwrap();
        let error = source.rate().unwrap_err().to_string();
        assert!(error.contains("old"), "{error}");
        assert!(RateSource::fixed("0").is_err());
        assert!(RateSource::fixed("lots").is_err());
        std::fs::remove_file(path).unwrap();
    }
}
