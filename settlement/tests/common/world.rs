//! Alice and Brandon's indexed channel and the watcher's HTTP API driven through
//! `app(state)` with `oneshot`: no socket.

use alloy::{
    primitives::{B256, Bytes, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use smartmesh_chain::Database;
use smartmesh_protocol::{BalanceProof, SignedProof, Watch, sign_typed, token_network_domain};
use smartmesh_settlement::{
    AppState, ReceiptBatch, ReceiptItem, Registrations, SentBackup, WatchAuthorization, app,
};
use sqlx::Row;
use tower::ServiceExt;

use super::{Stack, alice_and_brandon, catch_up, channel_follower};

pub(crate) struct World {
    pub(crate) stack: Stack,
    pub(crate) db: Database,
    pub(crate) channel_id: B256,
    pub(crate) watcher: PrivateKeySigner,
    pub(crate) state: AppState,
}

impl World {
    /// Alice and Brandon's channel (100 and 50 SMT), indexed into `db`.
    pub(crate) async fn new(db: Database) -> eyre::Result<Self> {
        let stack = Stack::deploy().await?;
        let channel_id = alice_and_brandon(&stack).await?;
        catch_up(&channel_follower(&stack, &db)?).await?;
        let watcher = stack.keys[7].clone();
        let state = AppState::new(db.clone(), stack.chain_id, stack.network, watcher.clone())
            .with_registrations(Registrations {
                registry: stack.registry,
                signed_agent: stack.agent,
                token: stack.token,
                fee: parse_ether("0.01")?,
            });
        Ok(Self {
            watcher,
            stack,
            db,
            channel_id,
            state,
        })
    }

    pub(crate) fn alice(&self) -> &PrivateKeySigner {
        &self.stack.keys[1]
    }

    pub(crate) fn brandon(&self) -> &PrivateKeySigner {
        &self.stack.keys[2]
    }

    /// `payer`'s proof that it paid `transferred` SMT in total at `nonce`.
    pub(crate) fn proof(
        &self,
        payer: &PrivateKeySigner,
        nonce: u64,
        transferred: &str,
    ) -> SignedProof {
        let domain = token_network_domain(self.stack.chain_id, self.stack.network);
        let proof = BalanceProof {
            channelId: self.channel_id,
            nonce: U256::from(nonce),
            transferredAmount: parse_ether(transferred).unwrap(),
            ..Default::default()
        };
        SignedProof {
            chain_id: self.stack.chain_id,
            token_network: self.stack.network,
            signature: sign_typed(payer, &proof, &domain),
            proof,
        }
    }

    /// `payer`'s proof and the Watch `watch_signer` gives this watcher for it.
    pub(crate) fn item(
        &self,
        payer: &PrivateKeySigner,
        watch_signer: &PrivateKeySigner,
        nonce: u64,
        transferred: &str,
    ) -> ReceiptItem {
        self.item_until(
            payer,
            watch_signer,
            nonce,
            transferred,
            U256::from(u64::MAX),
        )
    }

    /// The same with a Watch covering closes up to `deadline` only.
    pub(crate) fn item_until(
        &self,
        payer: &PrivateKeySigner,
        watch_signer: &PrivateKeySigner,
        nonce: u64,
        transferred: &str,
        deadline: U256,
    ) -> ReceiptItem {
        let domain = token_network_domain(self.stack.chain_id, self.stack.network);
        let signed = self.proof(payer, nonce, transferred);
        let watch = Watch {
            channelId: self.channel_id,
            proofDigest: signed.proof.eip712_signing_hash(&domain),
            watcher: self.watcher.address(),
            reward: parse_ether("1").unwrap(),
            deadline,
        };
        ReceiptItem {
            proof: signed.to_text().unwrap(),
            watch: WatchAuthorization {
                watcher: watch.watcher,
                reward: watch.reward,
                deadline: watch.deadline,
                signature: Bytes::copy_from_slice(
                    sign_typed(watch_signer, &watch, &domain).as_bytes(),
                ),
            },
            locks: None,
        }
    }

    /// The query string by which `who` proves it asks for the channel's private view, valid
    /// for `validity` seconds from now (negative: expired).
    pub(crate) fn read_as(&self, who: &PrivateKeySigner, validity: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expires = (now + validity) as u64;
        let read = smartmesh_protocol::WatcherRead {
            channelId: self.channel_id,
            participant: who.address(),
            watcher: self.watcher.address(),
            expiresAt: U256::from(expires),
        };
        let domain = smartmesh_protocol::watcher_domain(self.stack.chain_id, self.stack.network);
        let signature = sign_typed(who, &read, &domain);
        format!(
            "expires={expires}&signature={}",
            Bytes::copy_from_slice(signature.as_bytes())
        )
    }

    pub(crate) fn batch(&self, items: Vec<ReceiptItem>) -> serde_json::Value {
        self.batch_with_backups(items, vec![])
    }

    pub(crate) fn batch_with_backups(
        &self,
        items: Vec<ReceiptItem>,
        sent: Vec<String>,
    ) -> serde_json::Value {
        serde_json::to_value(ReceiptBatch {
            chain_id: self.stack.chain_id,
            token_network: self.stack.network,
            items,
            sent: sent.into_iter().map(SentBackup::Text).collect(),
            conditions: vec![],
        })
        .unwrap()
    }

    pub(crate) async fn post(&self, body: String) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let request = Request::post("/v1/receipts")
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        self.send(request).await
    }

    pub(crate) async fn get(&self, path: &str) -> eyre::Result<(StatusCode, serde_json::Value)> {
        self.send(Request::get(path).body(Body::empty())?).await
    }

    /// The raw body of a GET, for non-JSON answers.
    pub(crate) async fn get_text(&self, path: &str) -> eyre::Result<(StatusCode, String)> {
        let response = app(self.state.clone())
            .oneshot(Request::get(path).body(Body::empty())?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec())?))
    }

    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let response = app(self.state.clone()).oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes)?))
    }

    /// (signer, nonce, transferred, Watch deadline) of every receipt held.
    pub(crate) async fn held(&self) -> eyre::Result<Vec<(String, U256, U256, U256)>> {
        let rows = sqlx::query(
            "SELECT signer, nonce, transferred_amount, watch_deadline FROM receipts ORDER BY signer",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let nonce: Vec<u8> = row.try_get(1)?;
                let transferred: String = row.try_get(2)?;
                let deadline: String = row.try_get(3)?;
                Ok((
                    row.try_get(0)?,
                    U256::from_be_slice(&nonce),
                    transferred.parse()?,
                    deadline.parse()?,
                ))
            })
            .collect()
    }

    /// (signer, nonce) of every receipt held.
    pub(crate) async fn stored(&self) -> eyre::Result<Vec<(String, U256)>> {
        let rows = sqlx::query("SELECT signer, nonce FROM receipts ORDER BY signer")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let nonce: Vec<u8> = row.try_get(1)?;
                Ok((row.try_get(0)?, U256::from_be_slice(&nonce)))
            })
            .collect()
    }
}
