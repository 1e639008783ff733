//! Provider wiring from an RPC URL.

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::http::reqwest::Url,
};

use crate::ChainError;

/// A read-only provider for `rpc_url` (http or https). Transactions are signed and sent by the
/// crate's own sender, never by a provider-side wallet or nonce cache (alloy #2385).
pub fn connect(rpc_url: &str) -> Result<DynProvider, ChainError> {
    let url = Url::parse(rpc_url).map_err(|e| ChainError::RpcUrl {
        url: rpc_url.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(url)
        .erased())
}
