//! Channel operations on chain, gasless through the relayer: open, deposit with a permit,
//! close, settle, withdraw, cooperative settle; and reading a channel's state from the chain.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    sol_types::SolCall,
};
use smartmesh_protocol::{
    BalanceProof, Permit, Signature65, SignedProof, SmartMeshToken, TokenNetwork, sign_typed,
    token_domain,
};

use crate::{Channel, Mesh, MeshError, Relayed, wallet_client::now};

/// How long a relayed request stays valid: short, so a close the wallet changed its mind
/// about cannot come back later.
const VALIDITY: u64 = 600;

impl Mesh {
    fn chain(&self) -> Result<DynProvider, MeshError> {
        let url = self
            .config
            .rpc_url
            .as_deref()
            .ok_or(MeshError::NoService("chain RPC"))?;
        let url = url
            .parse()
            .map_err(|e| MeshError::Network(format!("rpc url {url:?}: {e}")))?;
        Ok(ProviderBuilder::new().connect_http(url).erased())
    }

    fn network(&self) -> Result<TokenNetwork::TokenNetworkInstance<DynProvider>, MeshError> {
        Ok(TokenNetwork::new(self.config.token_network, self.chain()?))
    }

    /// This wallet's SMT and ETH, in wei.
    pub async fn balances(&self) -> Result<(U256, U256), MeshError> {
        let chain = self.chain()?;
        let smt = SmartMeshToken::new(self.config.token, chain.clone())
            .balanceOf(self.address())
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        let eth = chain
            .get_balance(self.address())
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        Ok((smt, eth))
    }

    /// Reads the channel from the chain into the journal; a freeze ends when what was signed
    /// has landed.
    pub async fn refresh(&self, id: B256) -> Result<Channel, MeshError> {
        let network = self.network()?;
        let network_error = |e: alloy::contract::Error| MeshError::Network(e.to_string());
        let info = network
            .channelInfo(id)
            .call()
            .await
            .map_err(network_error)?;
        let known = self.journal.channel(id).await?;
        let mut channel = match info.state {
            // Settled channels are deleted on chain: the amounts last seen are all there is.
            state if state != 1 && state != 2 => Channel {
                state: "settled".into(),
                ..known.ok_or(MeshError::UnknownChannel(id))?
            },
            state => {
                let partner = if info.participant1 == self.address() {
                    info.participant2
                } else if info.participant2 == self.address() {
                    info.participant1
                } else {
                    return Err(MeshError::UnknownChannel(id));
                };
                let (my_deposit, my_withdrawn) = network
                    .participantInfo(id, self.address())
                    .call()
                    .await
                    .map_err(network_error)?
                    .into();
                let (partner_deposit, partner_withdrawn) = network
                    .participantInfo(id, partner)
                    .call()
                    .await
                    .map_err(network_error)?
                    .into();
                Channel {
                    id,
                    partner,
                    state: if state == 1 { "open" } else { "closed" }.into(),
                    settle_timeout: u64::try_from(info.settleTimeout).map_err(|_| {
                        MeshError::OutOfRange {
                            field: "settle timeout",
                            value: info.settleTimeout.to_string(),
                        }
                    })?,
                    my_deposit,
                    my_withdrawn,
                    partner_deposit,
                    partner_withdrawn,
                    frozen: known.and_then(|c| c.frozen),
                }
            }
        };
        self.journal.save_channel(&channel).await?;
        let landed = match channel.frozen.as_ref().map(|(reason, _)| reason.as_str()) {
            Some("withdraw") => {
                channel.my_withdrawn
                    >= self
                        .journal
                        .signed_withdrawal(id, self.address(), 0)
                        .await?
            }
            Some(_) => channel.state != "open",
            None => false,
        };
        if landed {
            self.journal.set_frozen(id, None).await?;
            channel.frozen = None;
        }
        Ok(channel)
    }

    /// Opens a channel to `partner` through the relayer and tracks it.
    pub async fn open_channel(
        &self,
        partner: Address,
        settle_timeout: u64,
    ) -> Result<(B256, Relayed), MeshError> {
        let call = TokenNetwork::openCall {
            partner,
            settleTimeout: U256::from(settle_timeout),
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        let (id, _) = self
            .network()?
            .currentChannel(self.address(), partner)
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?
            .into();
        self.refresh(id).await?;
        Ok((id, relayed))
    }

    /// Raises this wallet's deposit to `total`, pulling the difference with a permit: no
    /// approval transaction, so no ETH.
    pub async fn deposit(&self, id: B256, total: U256) -> Result<Relayed, MeshError> {
        let channel = self.refresh(id).await?;
        // A cooperative settle pays participant2 whatever it finds beyond balance1: a deposit
        // landing first would be given away.
        if let Some((reason, until)) = &channel.frozen
            && reason == "cooperative settle"
            && now() <= *until
        {
            return Err(MeshError::Frozen {
                channel: id,
                reason: reason.clone(),
                until: *until,
            });
        }
        let amount = total.saturating_sub(channel.my_deposit);
        let nonce = SmartMeshToken::new(self.config.token, self.chain()?)
            .nonces(self.address())
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        let deadline = U256::from(now() + VALIDITY);
        let permit = Permit {
            owner: self.address(),
            spender: self.config.token_network,
            value: amount,
            nonce,
            deadline,
        };
        let signature = sign_typed(
            &self.key,
            &permit,
            &token_domain(self.config.chain_id, self.config.token),
        );
        let (v, r, s) = split(&signature);
        let call = TokenNetwork::depositWithPermitCall {
            channelId: id,
            participant: self.address(),
            totalDeposit: total,
            permitValue: amount,
            permitDeadline: deadline,
            v,
            r,
            s,
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }

    /// Closes the channel, claiming the largest amount this wallet ever signed and submitting
    /// the partner's latest proof. Refused while a restored wallet has not run `restore`.
    pub async fn close(&self, id: B256) -> Result<Relayed, MeshError> {
        self.close_claiming(id, None).await
    }

    /// Closes the channel declaring `claim` instead of the largest amount signed. A claim
    /// below what this wallet signed is a lie the partner's watcher punishes with this
    /// wallet's whole deposit: for demonstrations and tests of exactly that.
    pub async fn close_claiming(
        &self,
        id: B256,
        claim: Option<U256>,
    ) -> Result<Relayed, MeshError> {
        let deadline = now() + VALIDITY;
        self.freeze_for_close(id, deadline).await?;
        let claim = match claim {
            Some(claim) => claim,
            None => self.close_claim(id).await?,
        };
        let (proof, signature) = match self.journal.latest_received(id).await? {
            Some(stored) => {
                let signed = SignedProof::decode(&stored.bytes)?;
                (
                    signed.proof,
                    Bytes::copy_from_slice(signed.signature.as_bytes()),
                )
            }
            None => (BalanceProof::default(), Bytes::new()),
        };
        let call = TokenNetwork::closeCall {
            channelId: id,
            partnerProof: proof.into(),
            partnerSig: signature,
            partnerLocks: Bytes::new(),
            claimTransferred: claim,
            ownLocks: Bytes::new(),
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }

    /// Settles the channel after its hold period.
    pub async fn settle(&self, id: B256) -> Result<Relayed, MeshError> {
        let call = TokenNetwork::settleCall { channelId: id };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }

    /// Withdraws up to `total` from the channel, with the partner's signature of the same
    /// `Withdraw` (from [`Mesh::sign_withdraw`] on its phone).
    pub async fn withdraw(
        &self,
        id: B256,
        total: U256,
        deadline: u64,
        partner_signature: &Signature65,
    ) -> Result<Relayed, MeshError> {
        let mine = self
            .sign_withdraw(id, self.address(), total, deadline)
            .await?;
        let call = TokenNetwork::withdrawCall {
            channelId: id,
            participant: self.address(),
            totalWithdraw: total,
            deadline: U256::from(deadline),
            participantSig: Bytes::copy_from_slice(mine.as_bytes()),
            partnerSig: Bytes::copy_from_slice(partner_signature.as_bytes()),
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }

    /// Settles the channel at once with the partner's agreement: `balance1` and `balance2` go
    /// to the lower and the higher address.
    pub async fn cooperative_settle(
        &self,
        id: B256,
        balance1: U256,
        balance2: U256,
        deadline: u64,
        partner_signature: &Signature65,
    ) -> Result<Relayed, MeshError> {
        let channel = self.channel(id).await?;
        let mine = self
            .sign_cooperative_settle(id, balance1, balance2, deadline)
            .await?;
        let (sig1, sig2) = if self.address() < channel.partner {
            (mine, *partner_signature)
        } else {
            (*partner_signature, mine)
        };
        let call = TokenNetwork::cooperativeSettleCall {
            channelId: id,
            balance1,
            balance2,
            deadline: U256::from(deadline),
            sig1: Bytes::copy_from_slice(sig1.as_bytes()),
            sig2: Bytes::copy_from_slice(sig2.as_bytes()),
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }
}

/// `(v, r, s)` of a 65-byte signature.
fn split(signature: &Signature65) -> (u8, B256, B256) {
    let bytes = signature.as_bytes();
    (
        bytes[64],
        B256::from_slice(&bytes[..32]),
        B256::from_slice(&bytes[32..64]),
    )
}
