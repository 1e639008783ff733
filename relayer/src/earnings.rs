//! What relaying earned and cost: each relay's fee counts once its transaction is final and
//! succeeded; every wei its key spent on it counts either way, by cause (the relay itself, a
//! mined revert, or the filler that took the nonce of a payload refused before broadcast).
//! `GET /v1/earnings` sums them per period.

use std::collections::BTreeMap;

use alloy::primitives::U256;
use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    routing::get,
};
use serde::{Deserialize, Serialize};
use smartmesh_chain::{TxStatus, unix_millis};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState, RelayerError,
    api::{ApiError, Core, ErrorBody},
};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/earnings", get(earnings))
}

/// Records the outcome of every relay whose transaction became final, with what its key
/// spent on it (as the sender booked it from the receipt); returns how many.
pub(crate) async fn settle_finished(core: &Core) -> Result<usize, RelayerError> {
    let open =
        sqlx::query("SELECT id, tx_id FROM relays WHERE settled_at IS NULL ORDER BY id LIMIT 500")
            .fetch_all(core.db.pool())
            .await?;
    let mut settled = 0;
    for row in open {
        let id: i64 = row.try_get(0)?;
        let tx_id: i64 = row.try_get(1)?;
        let (block, succeeded) = match core.sender.status(tx_id).await? {
            TxStatus::Confirmed {
                block, succeeded, ..
            } => (Some(smartmesh_chain::sql_int("block", block)?), succeeded),
            // Refused before or at broadcast: a filler took its nonce, and cost what it cost.
            TxStatus::Failed { .. } => (None, false),
            _ => continue,
        };
        let cost = core.sender.cost(tx_id).await?;
        let (gas_used, gas_price, cause) = match cost {
            Some(cost) => (
                smartmesh_chain::sql_int("gas used", cost.gas_used)?,
                cost.gas_price.to_string(),
                if cost.filler {
                    SpendCause::Filler
                } else if succeeded {
                    SpendCause::Relayed
                } else {
                    SpendCause::Reverted
                },
            ),
            None => (0, "0".to_owned(), SpendCause::Filler),
        };
        sqlx::query(
            "UPDATE relays SET gas_used = $1, gas_price = $2, mined_block = $3, succeeded = $4, settled_at = $5, \
             spend_cause = $6 WHERE id = $7",
        )
        .bind(gas_used)
        .bind(gas_price)
        .bind(block)
        .bind(i64::from(succeeded))
        .bind(unix_millis())
        .bind(cause.as_str())
        .bind(id)
        .execute(core.db.pool())
        .await?;
        settled += 1;
    }
    Ok(settled)
}

/// Why a key spent ETH on a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpendCause {
    /// The relayed call ran and paid its fee.
    Relayed,
    /// The transaction was mined and reverted: gas spent, no fee.
    Reverted,
    /// The payload was refused before broadcast (a simulation said it would revert) or by
    /// the node; a 0-value transfer took its nonce.
    Filler,
}

impl SpendCause {
    fn as_str(self) -> &'static str {
        match self {
            Self::Relayed => "relayed",
            Self::Reverted => "reverted",
            Self::Filler => "filler",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Relayed, Self::Reverted, Self::Filler]
            .into_iter()
            .find(|cause| cause.as_str() == text)
    }
}

/// How to group earnings.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// `hour`, `day` (the default) or `all`.
    #[param(inline)]
    period: Option<Grouping>,
}

/// A grouping of earnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// By hour.
    Hour,
    /// By day.
    #[default]
    Day,
    /// Everything in one.
    All,
}

impl Grouping {
    /// The length of one period in seconds; 0 for everything in one.
    fn seconds(self) -> u64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::All => 0,
        }
    }
}

/// One period's earnings. Amounts in wei.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodEarnings {
    /// The period's start (unix seconds; 0 for `all`).
    pub start: u64,
    /// Relays that became final in it.
    pub relays: u64,
    /// Of which succeeded (and paid their fee).
    pub succeeded: u64,
    /// SMT earned, in SMT wei.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub smt_earned: U256,
    /// ETH spent on their gas, in wei: every wei the keys spent, the sum of `ethSpentBy`.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub eth_spent: U256,
    /// The same by cause.
    pub eth_spent_by: SpentBy,
}

/// ETH spent, in wei, by cause.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpentBy {
    /// On relays that ran and paid their fee.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub relayed: U256,
    /// On transactions mined reverted (no fee earned).
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub reverted: U256,
    /// On fillers: 0-value transfers that took the nonce of a payload refused before or at
    /// broadcast (no fee earned).
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub filler: U256,
}

/// Earnings per period, oldest first, and in all.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Earnings {
    /// How they are grouped.
    pub period: Grouping,
    /// Each period with any relay.
    pub periods: Vec<PeriodEarnings>,
    /// Everything.
    pub total: PeriodEarnings,
}

/// SMT earned and ETH spent.
#[utoipa::path(get, path = "/v1/earnings", params(Period), responses(
    (status = 200, body = Earnings),
    (status = 400, description = "an unknown parameter or period (hour, day or all)", body = ErrorBody),
))]
pub(crate) async fn earnings(
    State(state): State<AppState>,
    query: Result<Query<Period>, QueryRejection>,
) -> Result<Json<Earnings>, ApiError> {
    let Query(query) = query.map_err(ApiError::from_query)?;
    let period = query.period.unwrap_or_default();
    let seconds = period.seconds();
    let rows = sqlx::query(
        "SELECT settled_at, fee, succeeded, gas_used, gas_price, spend_cause FROM relays WHERE settled_at IS NOT NULL",
    )
    .fetch_all(state.core.db.pool())
    .await
    .map_err(ApiError::storage)?;
    let mut periods: BTreeMap<u64, PeriodEarnings> = BTreeMap::new();
    let mut total = PeriodEarnings::default();
    for row in rows {
        let at = row.try_get::<i64, _>(0).map_err(ApiError::storage)? as u64 / 1_000;
        let start = if seconds == 0 { 0 } else { at - at % seconds };
        let fee: U256 = row
            .try_get::<String, _>(1)
            .map_err(ApiError::storage)?
            .parse()
            .map_err(ApiError::storage)?;
        let succeeded = row.try_get::<i64, _>(2).map_err(ApiError::storage)? == 1;
        let gas = U256::from(row.try_get::<i64, _>(3).map_err(ApiError::storage)? as u64);
        let price: U256 = row
            .try_get::<String, _>(4)
            .map_err(ApiError::storage)?
            .parse()
            .map_err(ApiError::storage)?;
        let cause: Option<String> = row.try_get(5).map_err(ApiError::storage)?;
        // Relays booked before causes were recorded: a success relayed, anything else reverted.
        let cause = cause
            .as_deref()
            .and_then(SpendCause::parse)
            .unwrap_or(if succeeded {
                SpendCause::Relayed
            } else {
                SpendCause::Reverted
            });
        let spent = gas.saturating_mul(price);
        for sum in [
            periods.entry(start).or_insert_with(|| PeriodEarnings {
                start,
                ..Default::default()
            }),
            &mut total,
        ] {
            sum.relays += 1;
            sum.eth_spent = sum.eth_spent.saturating_add(spent);
            let by = match cause {
                SpendCause::Relayed => &mut sum.eth_spent_by.relayed,
                SpendCause::Reverted => &mut sum.eth_spent_by.reverted,
                SpendCause::Filler => &mut sum.eth_spent_by.filler,
            };
            *by = by.saturating_add(spent);
            if succeeded {
                sum.succeeded += 1;
                sum.smt_earned = sum.smt_earned.saturating_add(fee);
            }
        }
    }
    Ok(Json(Earnings {
        period,
        periods: periods.into_values().collect(),
        total,
    }))
}
