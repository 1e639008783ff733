//! Channel operations on chain, gasless through the relayer: open, deposit with a permit,
//! close, settle, withdraw, cooperative settle; and reading a channel's state from the chain.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    sol_types::SolCall,
};
use smartmesh_protocol::{
    BalanceProof, ConditionRegistry, LockList, Permit, Signature65, SignedProof, SmartMeshToken,
    TokenNetwork,
    channel::{FreezeKind, Phase, RegistryRead},
    sign_typed, token_domain,
};

use crate::{Channel, Mesh, MeshError, Relayed};

/// How long a relayed request stays valid: short, so a close the wallet changed its mind
/// about cannot come back later.
const VALIDITY: u64 = 600;

impl Mesh {
    pub(crate) fn chain(&self) -> Result<DynProvider, MeshError> {
        if !self.is_online() {
            return Err(MeshError::Offline("chain"));
        }
        let url = self
            .config
            .rpc_url
            .as_deref()
            .ok_or(MeshError::NoService("chain RPC"))?;
        let url = url
            .parse()
            .map_err(|e| MeshError::Network(format!("rpc url {url:?}: {e}")))?;
        Ok(ProviderBuilder::new()
            .connect_client(alloy::rpc::client::RpcClient::new_http_with_client(
                self.http.clone(),
                url,
            ))
            .erased())
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
                state: Phase::Settled,
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
                    state: if state == 1 {
                        Phase::Open
                    } else {
                        Phase::Closed
                    },
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
                    frozen: known.as_ref().and_then(|c| c.frozen),
                    // Seen open at the latest block: any close this wallet has not seen comes
                    // later, or in the last F seconds if blocks are not final yet.
                    open_seen_at: if state == 1 {
                        self.latest_block_time()
                            .await?
                            .saturating_sub(self.config.finality)
                    } else {
                        known.map_or(0, |c| c.open_seen_at)
                    },
                }
            }
        };
        self.forget(Some(id));
        self.journal.save_channel(&channel).await?;
        let landed = match channel.frozen.map(|freeze| freeze.kind) {
            Some(FreezeKind::Withdraw) => {
                channel.my_withdrawn
                    >= self
                        .journal
                        .signed_withdrawal(id, self.address(), 0)
                        .await?
            }
            Some(_) => channel.state != Phase::Open,
            None => false,
        };
        if landed {
            self.journal.set_frozen(id, None).await?;
            channel.frozen = None;
        }
        Ok(channel)
    }

    /// The lists a closed channel holds, from its events: the close's own and partner lists,
    /// and the latest evidence's.
    async fn lock_lists(&self, id: B256) -> Result<(Bytes, Bytes, Bytes), MeshError> {
        let chain = self.chain()?;
        let filter = alloy::rpc::types::Filter::new()
            .address(self.config.token_network)
            .topic1(id)
            .from_block(self.config.deploy_block);
        let logs = chain
            .get_logs(&filter)
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        let (mut own, mut evidence, mut partner) = (Bytes::new(), Bytes::new(), Bytes::new());
        for log in logs {
            if let Ok(declared) = log.log_decode::<TokenNetwork::ChannelLocksDeclared>() {
                own = declared.inner.data.ownLocks.clone();
                partner = declared.inner.data.partnerLocks.clone();
            } else if let Ok(submitted) = log.log_decode::<TokenNetwork::EvidenceSubmitted>() {
                evidence = submitted.inner.data.locks.clone();
            }
        }
        Ok((own, evidence, partner))
    }

    /// The latest block's timestamp.
    pub(crate) async fn latest_block_time(&self) -> Result<u64, MeshError> {
        let block = self
            .chain()?
            .get_block(alloy::eips::BlockNumberOrTag::Latest.into())
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?
            .ok_or_else(|| MeshError::Network("the chain has no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// When the closed channel's hold period ends, as the chain says (zero while open).
    pub async fn settle_at(&self, id: B256) -> Result<U256, MeshError> {
        Ok(self
            .network()?
            .channelInfo(id)
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?
            .settleAt)
    }

    /// Reads the registry for `condition_id` at the latest block and records it: what a
    /// `LockExpired` needs, sent or received.
    pub async fn check_registry(&self, condition_id: B256) -> Result<RegistryRead, MeshError> {
        let registry = ConditionRegistry::new(self.config.condition_registry, self.chain()?);
        let registered_at = registry
            .registeredAt(condition_id)
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        let read = RegistryRead {
            registered_at: registered_at.to::<u64>(),
            block_time: self
                .latest_block_time()
                .await?
                .saturating_sub(self.config.finality),
        };
        self.read_registry(condition_id, read).await?;
        Ok(read)
    }

    /// Registers secrets in the ConditionRegistry through the relayer (no ETH): every lock on
    /// their hashlocks, in every channel and every hop, is then met as of now.
    pub async fn register_secrets(&self, secrets: Vec<B256>) -> Result<Relayed, MeshError> {
        let call = ConditionRegistry::registerSecretsCall { secrets };
        self.relay(self.config.condition_registry, call.abi_encode(), VALIDITY)
            .await
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
        if let Some(freeze) = channel.frozen
            && freeze.kind == FreezeKind::CooperativeSettle
            && self.now() <= freeze.until
        {
            return Err(MeshError::Frozen {
                channel: id,
                reason: freeze.kind,
                until: freeze.until,
            });
        }
        let amount = total.saturating_sub(channel.my_deposit);
        let nonce = SmartMeshToken::new(self.config.token, self.chain()?)
            .nonces(self.address())
            .call()
            .await
            .map_err(|e| MeshError::Network(e.to_string()))?;
        let deadline = U256::from(self.now() + VALIDITY);
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
        self.close_declaring(id, claim, None).await
    }

    /// Closes the channel declaring `claim` and `own_locks` (by default the largest amount
    /// signed and the pending locks of this wallet's latest proof). Declaring fewer locks than
    /// signed is penalized when the partner's watcher shows the signed list: for
    /// demonstrations and tests of exactly that.
    pub async fn close_declaring(
        &self,
        id: B256,
        claim: Option<U256>,
        own_locks: Option<LockList>,
    ) -> Result<Relayed, MeshError> {
        let deadline = self.now() + VALIDITY;
        self.freeze_for_close(id, deadline).await?;
        let claim = match claim {
            Some(claim) => claim,
            None => self.close_claim(id).await?,
        };
        let (proof, signature, partner_locks) = match self.journal.latest_received(id).await? {
            Some(stored) => {
                let signed = SignedProof::decode(&stored.bytes)?;
                (
                    signed.proof,
                    Bytes::copy_from_slice(signed.signature.as_bytes()),
                    Bytes::from(stored.locks),
                )
            }
            None => (BalanceProof::default(), Bytes::new(), Bytes::new()),
        };
        let own_locks = match own_locks {
            Some(locks) => locks,
            None => self.channel_state(id).await?.mine.locks,
        };
        let call = TokenNetwork::closeCall {
            channelId: id,
            partnerProof: proof.into(),
            partnerSig: signature,
            partnerLocks: partner_locks,
            claimTransferred: claim,
            ownLocks: Bytes::from(own_locks.encode()),
        };
        let relayed = self
            .relay(self.config.token_network, call.abi_encode(), VALIDITY)
            .await?;
        self.refresh(id).await?;
        Ok(relayed)
    }

    /// Settles the channel after its hold period; a channel holding lock lists settles with
    /// them, read from the close's and the evidence's events.
    pub async fn settle(&self, id: B256) -> Result<Relayed, MeshError> {
        let network = self.network()?;
        let network_error = |e: alloy::contract::Error| MeshError::Network(e.to_string());
        let held = network
            .channelLocks(id)
            .call()
            .await
            .map_err(network_error)?;
        let data = if held.declaredLocks.is_zero() && held.evidenceNonce.is_zero() {
            TokenNetwork::settleCall { channelId: id }.abi_encode()
        } else {
            let (own, evidence, partner) = self.lock_lists(id).await?;
            TokenNetwork::settleWithLocksCall {
                channelId: id,
                ownLocks: own,
                evidenceLocks: evidence,
                partnerLocks: partner,
            }
            .abi_encode()
        };
        let relayed = self
            .relay(self.config.token_network, data, VALIDITY)
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
