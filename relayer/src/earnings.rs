//! What relaying earned and cost: each relay's fee counts once its transaction is final and
//! succeeded; its gas, at the price actually paid, counts either way. `GET /v1/earnings`
//! sums them per period.

use std::collections::BTreeMap;

use alloy::{primitives::U256, providers::Provider};
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

/// Records the outcome of every relay whose transaction became final; returns how many.
pub(crate) async fn settle_finished(core: &Core) -> Result<usize, RelayerError> {
    let open =
        sqlx::query("SELECT id, tx_id FROM relays WHERE settled_at IS NULL ORDER BY id LIMIT 500")
            .fetch_all(core.db.pool())
            .await?;
    let mut settled = 0;
    for row in open {
        let id: i64 = row.try_get(0)?;
        let tx_id: i64 = row.try_get(1)?;
        let (gas_used, gas_price, block, succeeded) = match core.sender.status(tx_id).await? {
            TxStatus::Confirmed {
                hash,
                block,
                succeeded,
            } => {
                let receipt = core
                    .provider
                    .get_transaction_receipt(hash)
                    .await
                    .map_err(|e| RelayerError::Rpc(e.to_string()))?
                    .ok_or_else(|| RelayerError::Rpc(format!("no receipt for {hash}")))?;
                (
                    receipt.gas_used as i64,
                    receipt.effective_gas_price.to_string(),
                    Some(block as i64),
                    succeeded,
                )
            }
            // Never sent (it would have reverted) or refused: it cost only its nonce filler.
            TxStatus::Failed { .. } => (0, "0".to_owned(), None, false),
            _ => continue,
        };
        sqlx::query(
            "UPDATE relays SET gas_used = $1, gas_price = $2, mined_block = $3, succeeded = $4, settled_at = $5 \
             WHERE id = $6",
        )
        .bind(gas_used)
        .bind(gas_price)
        .bind(block)
        .bind(i64::from(succeeded))
        .bind(unix_millis())
        .bind(id)
        .execute(core.db.pool())
        .await?;
        settled += 1;
    }
    Ok(settled)
}

/// How to group earnings.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// `hour`, `day` (the default) or `all`.
    period: Option<String>,
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
    #[schema(value_type = String)]
    pub smt_earned: U256,
    /// ETH spent on their gas, in wei.
    #[schema(value_type = String)]
    pub eth_spent: U256,
}

/// Earnings per period, oldest first, and in all.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Earnings {
    /// `hour`, `day` or `all`.
    pub period: String,
    /// Each period with any relay.
    pub periods: Vec<PeriodEarnings>,
    /// Everything.
    pub total: PeriodEarnings,
}

/// SMT earned and ETH spent.
#[utoipa::path(get, path = "/v1/earnings", params(Period), responses(
    (status = 200, body = Earnings),
    (status = 400, description = "an unknown parameter or period", body = ErrorBody),
))]
pub(crate) async fn earnings(
    State(state): State<AppState>,
    query: Result<Query<Period>, QueryRejection>,
) -> Result<Json<Earnings>, ApiError> {
    let Query(query) = query.map_err(ApiError::from_query)?;
    let period = query.period.unwrap_or_else(|| "day".into());
    let seconds: u64 = match period.as_str() {
        "hour" => 3_600,
        "day" => 86_400,
        "all" => 0,
        other => {
            return Err(ApiError::invalid(
                "period",
                format!("{other:?}: use hour, day or all"),
            ));
        }
    };
    let rows = sqlx::query(
        "SELECT settled_at, fee, succeeded, gas_used, gas_price FROM relays WHERE settled_at IS NOT NULL",
    )
    .fetch_all(state.core.db.pool())
    .await
    .map_err(ApiError::internal)?;
    let mut periods: BTreeMap<u64, PeriodEarnings> = BTreeMap::new();
    let mut total = PeriodEarnings::default();
    for row in rows {
        let at = row.try_get::<i64, _>(0).map_err(ApiError::internal)? as u64 / 1_000;
        let start = if seconds == 0 { 0 } else { at - at % seconds };
        let fee: U256 = row
            .try_get::<String, _>(1)
            .map_err(ApiError::internal)?
            .parse()
            .map_err(ApiError::internal)?;
        let succeeded = row.try_get::<i64, _>(2).map_err(ApiError::internal)? == 1;
        let gas = U256::from(row.try_get::<i64, _>(3).map_err(ApiError::internal)? as u64);
        let price: U256 = row
            .try_get::<String, _>(4)
            .map_err(ApiError::internal)?
            .parse()
            .map_err(ApiError::internal)?;
        for sum in [
            periods.entry(start).or_insert_with(|| PeriodEarnings {
                start,
                ..Default::default()
            }),
            &mut total,
        ] {
            sum.relays += 1;
            sum.eth_spent += gas * price;
            if succeeded {
                sum.succeeded += 1;
                sum.smt_earned += fee;
            }
        }
    }
    Ok(Json(Earnings {
        period,
        periods: periods.into_values().collect(),
        total,
    }))
}
