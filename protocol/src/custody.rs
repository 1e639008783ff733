//! The watcher's rules (DESIGN.md sections 3.3, 3.4 and 10): which uploaded proof it keeps per
//! payer, when a Watch replaces the one it holds, whether a held proof disputes a close or is
//! submitted as lock evidence, and when a held condition is registered.
//! The receipts handler and the dispute engine both call these, so what is stored and what is
//! acted on follow one rule.
//!
//! The penalty rule is about `transferredAmount` alone: any closer-signed proof above the
//! claim proves a lie, whatever its nonce (a nonce can be set to the maximum to dodge a nonce
//! comparison). So the proof worth keeping is the one with the highest `transferredAmount`;
//! the nonce only breaks ties (a new lock leaves the amount unchanged). Along the one-step
//! sequences an honest receiver accepts, `T` never falls, so that proof is also the latest.

use alloy::primitives::{B256, U256};

use crate::{Lock, LockList, ProtocolError};

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
    /// The proof's amount is above the claim: the closer lied. Dispute it (a penalty).
    Dispute,
    /// The proof carries locks the closer's declaration leaves out, enough that at settle
    /// its term can exceed the declaration's: submit it as lock evidence, so an
    /// under-declaration is penalized and a dropped lock still pays.
    SubmitEvidence,
    /// Evidence at least as new as the proof is already on chain.
    EvidenceHeld,
    /// The claim and the declared locks cover the proof: an honest close as far as the
    /// watcher knows.
    ClaimCovers,
    /// The proof proves a lie (or dropped locks) but its Watch ended before the close: the
    /// contract would refuse it.
    WatchExpired,
}

/// A close as the chain shows it.
#[derive(Debug, Clone, Copy)]
pub struct CloseSeen<'a> {
    /// `claimTransferred`: what the closer declares it paid the non-closer in all.
    pub claim: U256,
    /// The close's timestamp.
    pub closed_at: u64,
    /// The closer's declared outgoing locks (`ownLocks`).
    pub declared: &'a LockList,
    /// The nonce of the lock evidence on chain (0: none).
    pub evidence_nonce: U256,
}

/// The best closer-signed proof held, with its locks and its Watch's deadline.
#[derive(Debug, Clone, Copy)]
pub struct HeldCloserProof<'a> {
    /// Its `transferredAmount`.
    pub transferred: U256,
    /// Its nonce.
    pub nonce: U256,
    /// The lock list behind its `locksRoot`.
    pub locks: &'a LockList,
    /// The deadline of the Watch it came with.
    pub watch_deadline: U256,
}

/// Judges a close against the best proof of the closer's the watcher holds.
///
/// At settle the non-closer is owed `max(claim + claimable(declared), T' + claimable(Λ'))`.
/// Locks in both lists are claimable alike, so evidence can only win through the locks the
/// declaration leaves out: it is worth submitting when `T'` plus their amounts exceeds the
/// claim (whether they become claimable is only known at settle). An honest closer whose
/// later proofs unlocked or expired those locks has a claim that covers them, so its close is
/// left alone.
pub fn judge_close(close: &CloseSeen<'_>, held: &HeldCloserProof<'_>) -> CloseVerdict {
    let lied = held.transferred > close.claim;
    let undeclared = undeclared_amount(held.locks, close.declared);
    let exceeds = held.transferred.saturating_add(undeclared) > close.claim;
    if !lied && !exceeds {
        return CloseVerdict::ClaimCovers;
    }
    if !watch_covers(held.watch_deadline, close.closed_at) {
        return CloseVerdict::WatchExpired;
    }
    if lied {
        CloseVerdict::Dispute
    } else if held.nonce <= close.evidence_nonce {
        CloseVerdict::EvidenceHeld
    } else {
        CloseVerdict::SubmitEvidence
    }
}

/// The sum of the locks of `proof` that `declared` does not hold (each declared lock matches
/// one lock of the proof at most).
fn undeclared_amount(proof: &LockList, declared: &LockList) -> U256 {
    let mut unmatched: Vec<&Lock> = declared.locks().iter().collect();
    let mut sum = U256::ZERO;
    for lock in proof.locks() {
        match unmatched.iter().position(|d| *d == lock) {
            Some(at) => {
                unmatched.swap_remove(at);
            }
            None => sum += U256::from(lock.amount),
        }
    }
    sum
}

/// What to do with a condition the watcher holds for a lock's receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationVerdict {
    /// The registry has it: nothing to do, ever.
    Registered,
    /// No lock the watcher knows waits for it (settled off chain by an `Unlock`, or not seen
    /// yet): look again later.
    NotPending,
    /// Every lock waiting for it is past its deadline, or the phone's request has expired:
    /// registering now would pay nobody.
    TooLate,
    /// Register it once the chain's clock reaches this time.
    WaitUntil(u64),
    /// Register it now.
    Register,
}

/// Judges a held condition. `deadlines` are `min(expiry, settleAt)` of each pending lock that
/// waits for it (DESIGN.md 3.4: it pays only if registered strictly before); the request that
/// registers it runs until `request_deadline`; `margin` is the time a registration needs to be
/// mined. Registering waits for the margin because until then the payer may still unlock off
/// chain, which costs nobody a transaction.
pub fn judge_registration(
    registered_at: u64,
    deadlines: &[u64],
    request_deadline: u64,
    chain_now: u64,
    margin: u64,
) -> RegistrationVerdict {
    if registered_at != 0 {
        return RegistrationVerdict::Registered;
    }
    if deadlines.is_empty() {
        return if request_deadline < chain_now {
            RegistrationVerdict::TooLate
        } else {
            RegistrationVerdict::NotPending
        };
    }
    let Some(deadline) = deadlines.iter().copied().filter(|d| *d > chain_now).min() else {
        return RegistrationVerdict::TooLate;
    };
    if request_deadline < chain_now {
        return RegistrationVerdict::TooLate;
    }
    // The request must still run when the registration lands.
    let by = deadline.min(request_deadline.saturating_add(1));
    let from = by.saturating_sub(margin);
    if chain_now >= from {
        RegistrationVerdict::Register
    } else {
        RegistrationVerdict::WaitUntil(from)
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

    fn lock(expiry: u64, amount: u128, tag: u8) -> Lock {
        Lock {
            expiry,
            amount,
            condition_id: B256::repeat_byte(tag),
        }
    }

    fn judge(
        claim: u64,
        declared: &LockList,
        evidence: u64,
        held: HeldCloserProof<'_>,
    ) -> CloseVerdict {
        judge_close(
            &CloseSeen {
                claim: U256::from(claim),
                closed_at: 1_000,
                declared,
                evidence_nonce: U256::from(evidence),
            },
            &held,
        )
    }

    fn proof(
        transferred: u64,
        nonce: u64,
        locks: &LockList,
        deadline: U256,
    ) -> HeldCloserProof<'_> {
        HeldCloserProof {
            transferred: U256::from(transferred),
            nonce: U256::from(nonce),
            locks,
            watch_deadline: deadline,
        }
    }

    #[test]
    fn a_close_is_disputed_only_below_a_proof_with_a_covering_watch() {
        let none = LockList::new();
        let max = U256::MAX;
        assert_eq!(
            judge(60, &none, 0, proof(60, 3, &none, max)),
            CloseVerdict::ClaimCovers
        );
        assert_eq!(
            judge(60, &none, 0, proof(61, 3, &none, max)),
            CloseVerdict::Dispute
        );
        assert_eq!(
            judge(60, &none, 0, proof(61, 3, &none, U256::from(1_000))),
            CloseVerdict::Dispute,
            "a deadline at the close's own second still covers it"
        );
        assert_eq!(
            judge(60, &none, 0, proof(61, 3, &none, U256::from(999))),
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

    #[test]
    fn a_dropped_lock_is_submitted_as_evidence_once() {
        let locked = LockList::from_locks(vec![lock(2_000, 10, 1)]).unwrap();
        let none = LockList::new();
        let max = U256::MAX;
        // The closer signed 50 plus a lock of 10, then closed claiming 50 and declaring none.
        assert_eq!(
            judge(50, &none, 0, proof(50, 7, &locked, max)),
            CloseVerdict::SubmitEvidence
        );
        // Declared: nothing to add.
        assert_eq!(
            judge(50, &locked, 0, proof(50, 7, &locked, max)),
            CloseVerdict::ClaimCovers
        );
        // Unlocked later: the claim of 60 covers the proof's 50 and its lock.
        assert_eq!(
            judge(60, &none, 0, proof(50, 7, &locked, max)),
            CloseVerdict::ClaimCovers
        );
        // Submitted already (by us or anyone), at this nonce or later.
        assert_eq!(
            judge(50, &none, 7, proof(50, 7, &locked, max)),
            CloseVerdict::EvidenceHeld
        );
        assert_eq!(
            judge(50, &none, 6, proof(50, 7, &locked, max)),
            CloseVerdict::SubmitEvidence
        );
        assert_eq!(
            judge(50, &none, 0, proof(50, 7, &locked, U256::from(999))),
            CloseVerdict::WatchExpired
        );
        // A lie is a lie whatever evidence is held: the penalty is immediate.
        assert_eq!(
            judge(40, &none, 9, proof(50, 7, &locked, max)),
            CloseVerdict::Dispute
        );
    }

    #[test]
    fn a_declared_lock_matches_one_lock_only() {
        let twice = LockList::from_locks(vec![lock(2_000, 10, 1), lock(2_000, 10, 1)]).unwrap();
        let once = LockList::from_locks(vec![lock(2_000, 10, 1)]).unwrap();
        assert_eq!(undeclared_amount(&twice, &once), U256::from(10));
        assert_eq!(undeclared_amount(&twice, &twice), U256::ZERO);
        // Another expiry is another lock.
        let later = LockList::from_locks(vec![lock(2_001, 10, 1)]).unwrap();
        assert_eq!(undeclared_amount(&once, &later), U256::from(10));
    }

    #[test]
    fn a_condition_is_registered_within_the_margin_of_its_earliest_open_deadline() {
        use RegistrationVerdict::*;
        assert_eq!(judge_registration(5, &[100], 200, 10, 20), Registered);
        assert_eq!(judge_registration(0, &[], 200, 10, 20), NotPending);
        assert_eq!(judge_registration(0, &[], 200, 201, 20), TooLate);
        assert_eq!(judge_registration(0, &[100], 200, 10, 20), WaitUntil(80));
        assert_eq!(judge_registration(0, &[100], 200, 80, 20), Register);
        assert_eq!(judge_registration(0, &[100], 200, 99, 20), Register);
        // At the deadline a registration no longer pays: `registeredAt < deadline`.
        assert_eq!(judge_registration(0, &[100], 200, 100, 20), TooLate);
        // A later lock on the same condition still counts when the first is past.
        assert_eq!(
            judge_registration(0, &[100, 300], 400, 150, 20),
            WaitUntil(280)
        );
        // The phone's request bounds it too.
        assert_eq!(judge_registration(0, &[300], 150, 10, 20), WaitUntil(131));
        assert_eq!(judge_registration(0, &[300], 150, 151, 20), TooLate);
    }
}
