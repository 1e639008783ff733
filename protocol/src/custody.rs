//! The watcher's rules (DESIGN.md sections 3.3 and 10): which uploaded proof it keeps per
//! payer, when a Watch replaces the one it holds, and whether a held proof disputes a close.
//! The receipts handler and the dispute engine both call these, so what is stored and what is
//! acted on follow one rule.
//!
//! The dispute rule is about `transferredAmount` alone: any closer-signed proof above the
//! claim proves a lie, whatever its nonce (a nonce can be set to the maximum to dodge a nonce
//! comparison). So the proof worth keeping is the one with the highest `transferredAmount`;
//! the nonce only breaks ties (a new lock leaves the amount unchanged).

use alloy::primitives::{B256, U256};

use crate::ProtocolError;

/// What the watcher compares of a proof it holds or is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofSummary {
    /// The proof's `transferredAmount`.
    pub transferred: U256,
    /// The proof's nonce.
    pub nonce: U256,
    /// The proof's EIP-712 digest: equal digests are the same proof.
    pub digest: B256,
    /// The deadline of the Watch that comes with it (received proofs); `None` for a backup of
    /// a proof its own signer uploaded.
    pub watch_deadline: Option<U256>,
}

/// What to do with an uploaded proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It proves more than the proof held (or none is held): keep it instead.
    Store,
    /// The proof held, with a Watch that covers later closes: keep the proof, take the Watch.
    RenewWatch,
    /// Exactly the proof held, with no better Watch.
    Known,
    /// It proves less than the proof held.
    Refuse(ProtocolError),
}

/// Judges `offered` against `held`, the proof kept from the same payer on the same channel.
pub fn judge_upload(held: Option<&ProofSummary>, offered: &ProofSummary) -> Verdict {
    let Some(held) = held else {
        return Verdict::Store;
    };
    if held.digest == offered.digest {
        return match (held.watch_deadline, offered.watch_deadline) {
            (Some(kept), Some(new)) if new > kept => Verdict::RenewWatch,
            _ => Verdict::Known,
        };
    }
    if offered.transferred < held.transferred {
        return Verdict::Refuse(ProtocolError::TransferredDecreased {
            last: held.transferred,
            got: offered.transferred,
        });
    }
    if offered.transferred == held.transferred && offered.nonce <= held.nonce {
        return Verdict::Refuse(ProtocolError::NonceNotIncreased {
            last: held.nonce,
            got: offered.nonce,
        });
    }
    Verdict::Store
}

/// A payer can have paid at most everything deposited in the channel: a proof above that is
/// refused before it is stored (the receiver's exact capacity check is the phone's; the
/// watcher may not know the receiver's own payments).
pub fn within_deposits(transferred: U256, deposit1: U256, deposit2: U256) -> bool {
    transferred <= deposit1.saturating_add(deposit2)
}

/// Whether a Watch authorizes a dispute of a close made at `closed_at`: the contract takes
/// it when its deadline is at or after the close, so a closer cannot outwait it.
pub fn watch_covers(deadline: U256, closed_at: u64) -> bool {
    deadline >= U256::from(closed_at)
}

/// What a held closer-signed proof says about a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseVerdict {
    /// The proof's amount is above the claim: the closer under-declared. Dispute it.
    Dispute,
    /// The claim covers the proof: an honest close as far as the watcher knows.
    ClaimCovers,
    /// The proof proves a lie but its Watch ended before the close: the contract would
    /// refuse it.
    WatchExpired,
}

/// Judges a close declaring `claim` at `closed_at` against a held proof of the closer's
/// with its Watch's deadline.
pub fn judge_close(
    claim: U256,
    closed_at: u64,
    proof_transferred: U256,
    watch_deadline: U256,
) -> CloseVerdict {
    if proof_transferred <= claim {
        CloseVerdict::ClaimCovers
    } else if !watch_covers(watch_deadline, closed_at) {
        CloseVerdict::WatchExpired
    } else {
        CloseVerdict::Dispute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(transferred: u64, nonce: u64, digest: u8, deadline: Option<u64>) -> ProofSummary {
        ProofSummary {
            transferred: U256::from(transferred),
            nonce: U256::from(nonce),
            digest: B256::repeat_byte(digest),
            watch_deadline: deadline.map(U256::from),
        }
    }

    #[test]
    fn the_highest_amount_wins_whatever_the_nonce() {
        let kept = held(140, 6, 1, Some(u64::MAX));
        assert_eq!(
            judge_upload(Some(&kept), &held(30, 7, 2, Some(u64::MAX))),
            Verdict::Refuse(ProtocolError::TransferredDecreased {
                last: U256::from(140),
                got: U256::from(30)
            })
        );
        assert_eq!(
            judge_upload(Some(&kept), &held(141, 2, 3, Some(0))),
            Verdict::Store
        );
        assert_eq!(judge_upload(None, &held(1, 1, 1, None)), Verdict::Store);
    }

    #[test]
    fn the_nonce_breaks_a_tie() {
        let kept = held(50, 4, 1, Some(10));
        assert_eq!(
            judge_upload(Some(&kept), &held(50, 5, 2, Some(10))),
            Verdict::Store
        );
        assert!(matches!(
            judge_upload(Some(&kept), &held(50, 4, 2, Some(10))),
            Verdict::Refuse(ProtocolError::NonceNotIncreased { .. })
        ));
    }

    #[test]
    fn a_later_watch_renews_the_same_proof() {
        let kept = held(50, 4, 1, Some(0));
        assert_eq!(
            judge_upload(Some(&kept), &held(50, 4, 1, Some(100))),
            Verdict::RenewWatch
        );
        assert_eq!(
            judge_upload(Some(&kept), &held(50, 4, 1, Some(0))),
            Verdict::Known
        );
        let good = held(50, 4, 1, Some(100));
        assert_eq!(
            judge_upload(Some(&good), &held(50, 4, 1, Some(99))),
            Verdict::Known,
            "an earlier Watch never replaces a later one"
        );
        // A backup has no Watch: the same proof again is known.
        let backup = held(50, 4, 1, None);
        assert_eq!(
            judge_upload(Some(&backup), &held(50, 4, 1, None)),
            Verdict::Known
        );
    }

    #[test]
    fn a_close_is_disputed_only_below_a_proof_with_a_covering_watch() {
        let claim = U256::from(60);
        let max = U256::MAX;
        assert_eq!(
            judge_close(claim, 1_000, U256::from(60), max),
            CloseVerdict::ClaimCovers
        );
        assert_eq!(
            judge_close(claim, 1_000, U256::from(61), max),
            CloseVerdict::Dispute
        );
        assert_eq!(
            judge_close(claim, 1_000, U256::from(61), U256::from(1_000)),
            CloseVerdict::Dispute,
            "a deadline at the close's own second still covers it"
        );
        assert_eq!(
            judge_close(claim, 1_000, U256::from(61), U256::from(999)),
            CloseVerdict::WatchExpired
        );
        assert!(within_deposits(
            U256::from(150),
            U256::from(100),
            U256::from(50)
        ));
        assert!(!within_deposits(
            U256::from(151),
            U256::from(100),
            U256::from(50)
        ));
        assert!(within_deposits(U256::MAX, U256::MAX, U256::from(1)));
    }
}
