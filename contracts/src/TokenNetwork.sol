// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SignatureRules} from "./libraries/SignatureRules.sol";
import {SettlementMath} from "./libraries/SettlementMath.sol";
import {Locks} from "./libraries/Locks.sol";
import {ConditionRegistry} from "./ConditionRegistry.sol";

/// @title TokenNetwork: two-party payment channels with a penalizing hold period
/// @notice One contract per token. Two participants deposit, pay each other off chain with
/// signed balance proofs, and settle on chain. A closer declares what it paid its partner
/// (`claimTransferred`); if, during the hold period, the partner or its watcher shows a proof
/// signed by the closer for more, the closer lied and the partner receives all the channel
/// holds. An honest close pays an offline partner correctly with no watcher at all.
/// Payments may be conditional (the SmartMesh Condition): a proof carries a list of locks
/// (`Locks`), and a lock pays its receiver if and only if its condition was registered in the
/// `ConditionRegistry` at a time `t` with `0 < t < min(expiry, settleAt)`.
/// @dev Immutable and ownerless. Every participant-authenticated function reads
/// `_msgSender()`, so it also works gaslessly through the trusted SignedAgent.
contract TokenNetwork is EIP712, ERC2771Context, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice A channel's life cycle; a settled channel's storage is deleted (back to `None`).
    enum ChannelState {
        None,
        Open,
        Closed
    }

    /// @notice An off-chain payment state, signed by the payer (EIP-712).
    /// @param channelId The channel, which also binds the pair's epoch.
    /// @param nonce Strictly increasing per direction, starting at 1.
    /// @param transferredAmount Everything the payer has paid so far; never decreases.
    /// @param lockedAmount The sum of the payer's pending locks toward its partner.
    /// @param locksRoot The root of that lock list (`Locks.rootOf`), zero when it is empty.
    /// @param messageHash Binds an off-chain memo; may be zero.
    struct BalanceProof {
        bytes32 channelId;
        uint256 nonce;
        uint256 transferredAmount;
        uint256 lockedAmount;
        bytes32 locksRoot;
        bytes32 messageHash;
    }

    /// @notice A non-closer's authorization for a watcher to submit one closer-signed proof.
    /// @param channelId The channel.
    /// @param proofDigest The EIP-712 digest of the closer's `BalanceProof`.
    /// @param watcher The only allowed submitter, or `address(0)` for anyone (then `reward` is 0).
    /// @param reward Paid to the watcher at settle out of the non-closer's payout.
    /// @param deadline Valid for closes at or before this timestamp.
    struct Watch {
        bytes32 channelId;
        bytes32 proofDigest;
        address watcher;
        uint256 reward;
        uint256 deadline;
    }

    /// @notice Everything a client or watcher needs to know about a channel.
    struct ChannelInfo {
        ChannelState state;
        address participant1;
        address participant2;
        uint256 settleTimeout;
        uint256 settleAt;
        address closer;
        uint256 claimTransferred;
        uint256 closerReceived;
        bool penalized;
        address watcher;
        uint256 reward;
        uint256 deposit1;
        uint256 withdrawn1;
        uint256 deposit2;
        uint256 withdrawn2;
    }

    /// @notice The lock lists a closed channel holds, by commitment: each list's bytes were
    /// emitted when it was handed in, and `settleWithLocks` takes them back.
    /// @param declaredLocks `declaredLocksOf(partnerLocks, ownLocks)` of the close: the
    /// non-closer's pending locks toward the closer (behind the partner proof the closer handed
    /// in) and the closer's declared pending locks toward the non-closer; zero when both are
    /// empty.
    /// @param evidenceLocksRoot The locks of the closer-signed proof held as evidence.
    /// @param evidenceNonce That proof's nonce; 0 when there is no evidence.
    /// @param evidenceTransferred That proof's `transferredAmount`.
    struct ChannelLocks {
        bytes32 declaredLocks;
        bytes32 evidenceLocksRoot;
        uint256 evidenceNonce;
        uint256 evidenceTransferred;
    }

    struct Participant {
        uint128 deposit;
        uint128 withdrawn;
    }

    // Slots 0 and 1 are the only ones `open` writes; the rest are written when used.
    struct Channel {
        address participant1;
        ChannelState state;
        bool closedByParticipant1;
        // Set when lock lists or evidence are stored: in the slot `close` and `settle` touch
        // anyway, so a channel without locks pays nothing for them.
        bool locksPending;
        uint32 settleTimeout;
        uint40 settleAt;
        address participant2;
        bool penalized;
        Participant account1;
        Participant account2;
        uint256 claimTransferred;
        uint256 closerReceived;
        address watcher;
        uint256 reward;
        // One slot for both lists of the close: a second one would cost every close with locks
        // another 22,100 gas.
        bytes32 declaredLocks;
        bytes32 evidenceLocksRoot;
        uint256 evidenceNonce;
        uint256 evidenceTransferred;
    }

    /// @notice EIP-712 type hash of `BalanceProof`.
    bytes32 public constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(bytes32 channelId,uint256 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot,bytes32 messageHash)"
    );
    /// @notice EIP-712 type hash of `Watch`.
    bytes32 public constant WATCH_TYPEHASH =
        keccak256("Watch(bytes32 channelId,bytes32 proofDigest,address watcher,uint256 reward,uint256 deadline)");
    /// @notice EIP-712 type hash of a withdrawal both participants sign.
    bytes32 public constant WITHDRAW_TYPEHASH =
        keccak256("Withdraw(bytes32 channelId,address participant,uint256 totalWithdraw,uint256 deadline)");
    /// @notice EIP-712 type hash of a cooperative settlement both participants sign.
    bytes32 public constant COOPERATIVE_SETTLE_TYPEHASH =
        keccak256("CooperativeSettle(bytes32 channelId,uint256 balance1,uint256 balance2,uint256 deadline)");

    /// @notice The largest total deposit of one participant: 2^127 - 1, so that both deposits
    /// together, and every total, withdrawal and payout derived from them, fit in 128 bits.
    uint256 public constant MAX_DEPOSIT = type(uint128).max >> 1;

    /// @notice The token this network's channels hold.
    IERC20 public immutable token;
    /// @notice The shortest hold period a channel may have, in seconds.
    uint256 public immutable minSettleTimeout;
    /// @notice The longest hold period a channel may have, in seconds.
    uint256 public immutable maxSettleTimeout;
    /// @notice Where the conditions of locks are registered.
    ConditionRegistry public immutable registry;

    mapping(bytes32 channelId => Channel) private _channels;
    // The epoch of the pair's last settled channel. The pair's live channel, if any, is always
    // at the next epoch; writing the counter at settle instead of open keeps `open` at two
    // fresh storage slots and still gives every channel a new id.
    mapping(bytes32 pairKey => uint256 epoch) private _settledEpoch;

    /// @notice The settle timeout is outside `[minSettleTimeout, maxSettleTimeout]`.
    error InvalidSettleTimeout(uint256 settleTimeout, uint256 min, uint256 max);
    /// @notice The constructor's timeout bounds are empty or do not fit a timestamp.
    error InvalidTimeoutBounds(uint256 min, uint256 max);
    /// @notice The partner is the zero address or the opener itself.
    error InvalidPartner(address partner);
    /// @notice The pair already has a channel that is not settled.
    error ChannelAlreadyExists(bytes32 channelId);
    /// @notice The channel is not in the state this function needs.
    error WrongChannelState(bytes32 channelId, ChannelState state);
    /// @notice The address is not a participant of the channel.
    error NotParticipant(bytes32 channelId, address account);
    /// @notice A total deposit must rise; replays of an old total are refused.
    error DepositNotIncreased(uint256 totalDeposit, uint256 current);
    /// @notice A participant's total deposit may not exceed `MAX_DEPOSIT`.
    error DepositTooLarge(uint256 totalDeposit, uint256 max);
    /// @notice The token moved a different amount than asked (a fee-on-transfer token).
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice A total withdrawal must rise.
    error WithdrawNotIncreased(uint256 totalWithdraw, uint256 current);
    /// @notice Both withdrawals together would exceed both deposits.
    error WithdrawExceedsDeposits(uint256 totalWithdraw, uint256 partnerWithdrawn, uint256 deposits);
    /// @notice The signed message's deadline passed.
    error SignatureExpired(uint256 deadline);
    /// @notice The balances of a cooperative settlement do not add up to what the channel holds.
    error BalancesMismatch(uint256 balance1, uint256 balance2, uint256 total);
    /// @notice The balance proof is for another channel.
    error ProofChannelMismatch(bytes32 expected, bytes32 actual);
    /// @notice A balance proof must have a nonce of at least 1.
    error InvalidProofNonce();
    /// @notice The lock list handed in does not hash to the signed or stored root.
    error LocksRootMismatch(bytes32 expected, bytes32 actual);
    /// @notice The lock list's amounts do not add up to the proof's `lockedAmount`.
    error LockedAmountMismatch(uint256 lockedAmount, uint256 listed);
    /// @notice A proof with locks is evidence only when its nonce is above the evidence held.
    error EvidenceNotNewer(uint256 nonce, uint256 held);
    /// @notice The two lists given to `settleWithLocks` are not the ones the close declared.
    error DeclaredLocksMismatch(bytes32 stored, bytes32 given);
    /// @notice The channel holds lock lists: settle it with `settleWithLocks`.
    error LocksPending(bytes32 channelId);
    /// @notice The closer may not dispute its own close.
    error CloserCannotUpdate(address closer);
    /// @notice The `Watch` is for another channel or another proof.
    error WatchMismatch(bytes32 channelId, bytes32 proofDigest);
    /// @notice The `Watch` names another watcher.
    error WatcherNotAllowed(address watcher, address sender);
    /// @notice A `Watch` open to anyone must carry no reward.
    error RewardWithoutWatcher(uint256 reward);
    /// @notice The `Watch` expired before the channel was closed.
    error WatchExpired(uint256 deadline, uint256 closedAt);
    /// @notice The closer's proof does not exceed its declared claim: nothing to dispute.
    error ClaimNotExceeded(uint256 provenTransferred, uint256 claimTransferred);
    /// @notice The closer was already penalized; the first dispute is final.
    error AlreadyPenalized(bytes32 channelId);
    /// @notice The hold period runs until `settleAt`.
    error HoldPeriodNotOver(uint256 settleAt);

    /// @notice A channel was opened between `participant1 < participant2` at `epoch`.
    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed participant1,
        address indexed participant2,
        uint256 epoch,
        uint256 settleTimeout
    );
    /// @notice `participant`'s total deposit rose to `totalDeposit`.
    event ChannelDeposited(bytes32 indexed channelId, address indexed participant, uint256 totalDeposit);
    /// @notice `participant`'s total withdrawal rose to `totalWithdraw`.
    event ChannelWithdrawn(bytes32 indexed channelId, address indexed participant, uint256 totalWithdraw);
    /// @notice `closer` closed the channel declaring it paid `claimTransferred` and received
    /// `closerReceived`; the hold period ends at `settleAt`.
    event ChannelClosed(
        bytes32 indexed channelId,
        address indexed closer,
        uint256 claimTransferred,
        uint256 closerReceived,
        uint256 partnerProofNonce,
        uint256 settleAt
    );
    /// @notice A proof signed by the closer for `provenTransferred` exceeded its claim: the
    /// closer is penalized, and `watcher` earns `reward` at settle.
    event CloserPenalized(
        bytes32 indexed channelId, address indexed submitter, address watcher, uint256 provenTransferred, uint256 reward
    );
    /// @notice A close handed in lock lists: `partnerLocks` behind the partner's proof (owed to
    /// the closer) and the closer's declared `ownLocks` (owed to the non-closer). Each is the
    /// concatenation of 64-byte locks (`Locks`); `settleWithLocks` needs them back.
    event ChannelLocksDeclared(bytes32 indexed channelId, bytes partnerLocks, bytes ownLocks);
    /// @notice A closer-signed proof with locks, not above the claim, is now the channel's
    /// evidence; at settle, if its `transferredAmount` plus its claimable locks exceeds the
    /// closer's declaration, the closer is penalized and `watcher` earns `reward`.
    event EvidenceSubmitted(
        bytes32 indexed channelId,
        address indexed submitter,
        address watcher,
        uint256 nonce,
        uint256 transferredAmount,
        bytes locks,
        uint256 reward
    );
    /// @notice The channel was settled after its hold period and its storage deleted.
    event ChannelSettled(bytes32 indexed channelId, uint256 payout1, uint256 payout2, address watcher, uint256 reward);
    /// @notice The participants settled together while the channel was open; `balance2` is
    /// what participant2 was paid (at least what it signed).
    event ChannelCooperativelySettled(bytes32 indexed channelId, uint256 balance1, uint256 balance2);

    /// @param token_ The token the channels hold.
    /// @param agent The SignedAgent trusted as ERC-2771 forwarder.
    /// @param registry_ The registry whose entries decide locks.
    /// @param minSettleTimeout_ The shortest hold period in seconds (hours on a public network).
    /// @param maxSettleTimeout_ The longest hold period in seconds.
    constructor(
        IERC20 token_,
        address agent,
        ConditionRegistry registry_,
        uint256 minSettleTimeout_,
        uint256 maxSettleTimeout_
    )
        EIP712("SmartMesh TokenNetwork", "1")
        ERC2771Context(agent)
    {
        if (minSettleTimeout_ == 0 || minSettleTimeout_ > maxSettleTimeout_ || maxSettleTimeout_ > type(uint32).max) {
            revert InvalidTimeoutBounds(minSettleTimeout_, maxSettleTimeout_);
        }
        token = token_;
        registry = registry_;
        minSettleTimeout = minSettleTimeout_;
        maxSettleTimeout = maxSettleTimeout_;
    }

    // ---------------------------------------------------------------------------------------
    // Opening and funding
    // ---------------------------------------------------------------------------------------

    /// @notice Opens a channel between the caller and `partner`.
    /// @param partner The other participant.
    /// @param settleTimeout The hold period in seconds; a partner should check it before
    /// depositing.
    /// @return channelId The new channel's id, unique across every channel the pair opens.
    function open(address partner, uint256 settleTimeout) external returns (bytes32 channelId) {
        channelId = _open(partner, settleTimeout);
    }

    /// @notice Opens a channel and deposits `amount` for the caller in one transaction.
    function openWithDeposit(address partner, uint256 settleTimeout, uint256 amount)
        external
        nonReentrant
        returns (bytes32 channelId)
    {
        channelId = _open(partner, settleTimeout);
        _deposit(channelId, _msgSender(), amount);
    }

    /// @notice Raises `participant`'s total deposit to `totalDeposit`, pulling the difference
    /// from the caller. Anyone may fund anyone; a replayed total reverts and moves nothing.
    function deposit(bytes32 channelId, address participant, uint256 totalDeposit) external nonReentrant {
        _deposit(channelId, participant, totalDeposit);
    }

    /// @notice `deposit` with an EIP-2612 permit for this contract. A permit that fails (for
    /// example because someone front-ran it) is ignored when the allowance already suffices.
    function depositWithPermit(
        bytes32 channelId,
        address participant,
        uint256 totalDeposit,
        uint256 permitValue,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant {
        try IERC20Permit(address(token)).permit(_msgSender(), address(this), permitValue, permitDeadline, v, r, s) {}
            catch {}
        _deposit(channelId, participant, totalDeposit);
    }

    // ---------------------------------------------------------------------------------------
    // Leaving while open
    // ---------------------------------------------------------------------------------------

    /// @notice Pays out part of a channel while it stays open, on both participants' signatures.
    /// @param participant Receives `totalWithdraw` minus what it withdrew before.
    /// @param totalWithdraw The participant's new total withdrawal; must rise.
    /// @param deadline The last timestamp the signatures are valid.
    function withdraw(
        bytes32 channelId,
        address participant,
        uint256 totalWithdraw,
        uint256 deadline,
        bytes calldata participantSig,
        bytes calldata partnerSig
    ) external nonReentrant {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        Channel storage channel = _requireState(channelId, ChannelState.Open);
        (Participant storage account, Participant storage partnerAccount, address partner) =
            _accounts(channel, channelId, participant);

        uint256 current = account.withdrawn;
        if (totalWithdraw <= current) revert WithdrawNotIncreased(totalWithdraw, current);
        uint256 deposits = uint256(channel.account1.deposit) + channel.account2.deposit;
        // W_self + W_partner <= D1 + D2, written so that nothing can wrap: W_partner <= D1 + D2
        // always holds.
        if (totalWithdraw > deposits - partnerAccount.withdrawn) {
            revert WithdrawExceedsDeposits(totalWithdraw, partnerAccount.withdrawn, deposits);
        }

        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, participant, totalWithdraw, deadline)));
        SignatureRules.requireSigner(digest, participantSig, participant);
        SignatureRules.requireSigner(digest, partnerSig, partner);

        // forge-lint: disable-next-line(unsafe-typecast) bounded by the deposits, below 2^128
        account.withdrawn = uint128(totalWithdraw);
        token.safeTransfer(participant, totalWithdraw - current);
        emit ChannelWithdrawn(channelId, participant, totalWithdraw);
    }

    /// @notice Ends an open channel at once with the balances both participants signed. Never
    /// allowed after a close, so an old agreement cannot undo a penalty.
    /// @param balance1 What participant1 receives.
    /// @param balance2 The least participant2 receives: it gets everything else the channel
    /// holds, deposits made after the signatures included.
    function cooperativeSettle(
        bytes32 channelId,
        uint256 balance1,
        uint256 balance2,
        uint256 deadline,
        bytes calldata sig1,
        bytes calldata sig2
    ) external nonReentrant {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        Channel storage channel = _requireState(channelId, ChannelState.Open);
        uint256 total = _total(channel);
        // balance1 + balance2 <= total without an addition that could wrap (CVE-2018-10376).
        // Participant1 gets balance1 and participant2 the rest, at least balance2: a deposit
        // that lands after both signed (anyone may fund anyone) goes to participant2 instead
        // of making the settlement revert, so one wei cannot force both to sign again.
        if (balance1 > total || balance2 > total - balance1) revert BalancesMismatch(balance1, balance2, total);
        uint256 payout2 = total - balance1;

        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(COOPERATIVE_SETTLE_TYPEHASH, channelId, balance1, balance2, deadline))
        );
        address participant1 = channel.participant1;
        address participant2 = channel.participant2;
        SignatureRules.requireSigner(digest, sig1, participant1);
        SignatureRules.requireSigner(digest, sig2, participant2);

        _deleteChannel(channel, participant1, participant2, false);
        _payOut(participant1, balance1);
        _payOut(participant2, payout2);
        emit ChannelCooperativelySettled(channelId, balance1, payout2);
    }

    // ---------------------------------------------------------------------------------------
    // Closing, disputing and settling
    // ---------------------------------------------------------------------------------------

    /// @notice Closes the channel and starts the hold period.
    /// @param partnerProof The latest proof the caller received from its partner, or all zeros
    /// with an empty `partnerSig` when it received nothing.
    /// @param partnerSig The partner's signature of `partnerProof`.
    /// @param partnerLocks The lock list behind `partnerProof.locksRoot` (empty when it has
    /// none): the partner's pending locks toward the caller.
    /// @param claimTransferred Everything the caller paid its partner: the largest amount it
    /// ever signed on this channel. Declaring less is penalized with the caller's whole share.
    /// @param ownLocks The caller's own pending locks toward its partner, those of its latest
    /// signed proof. Dropping one it signed is penalized like an under-declaration.
    function close(
        bytes32 channelId,
        BalanceProof calldata partnerProof,
        bytes calldata partnerSig,
        bytes calldata partnerLocks,
        uint256 claimTransferred,
        bytes calldata ownLocks
    ) external {
        Channel storage channel = _requireState(channelId, ChannelState.Open);
        address closer = _msgSender();
        bool closedByParticipant1 = closer == channel.participant1;
        if (!closedByParticipant1 && closer != channel.participant2) revert NotParticipant(channelId, closer);

        uint256 received;
        bytes32 partnerLocksRoot;
        if (partnerSig.length != 0 || !_isEmpty(partnerProof)) {
            _checkProof(channelId, partnerProof, partnerLocks);
            address partner = closedByParticipant1 ? channel.participant2 : channel.participant1;
            SignatureRules.requireSigner(_hashTypedDataV4(_hashProof(partnerProof)), partnerSig, partner);
            received = partnerProof.transferredAmount;
            partnerLocksRoot = partnerProof.locksRoot;
        } else if (partnerLocks.length != 0) {
            revert LocksRootMismatch(bytes32(0), Locks.rootOf(partnerLocks));
        }
        (bytes32 ownLocksRoot,) = Locks.check(ownLocks);

        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        uint40 settleAt = uint40(block.timestamp) + channel.settleTimeout;
        channel.state = ChannelState.Closed;
        channel.closedByParticipant1 = closedByParticipant1;
        channel.settleAt = settleAt;
        if (claimTransferred != 0) channel.claimTransferred = claimTransferred;
        if (received != 0) channel.closerReceived = received;
        emit ChannelClosed(channelId, closer, claimTransferred, received, partnerProof.nonce, settleAt);
        if (partnerLocksRoot != bytes32(0) || ownLocksRoot != bytes32(0)) {
            channel.locksPending = true;
            channel.declaredLocks = _declaredLocks(partnerLocksRoot, ownLocksRoot);
            emit ChannelLocksDeclared(channelId, partnerLocks, ownLocks);
        }
    }

    /// @notice Shows a proof the closer signed. Above its claim, it proves the closer lied and
    /// penalizes it at once: at settle the non-closer receives all the channel holds. Not above
    /// the claim but with locks, it becomes the channel's evidence (replacing evidence with a
    /// lower nonce): at settle, if it proves more than the closer declared with its own locks,
    /// the closer dropped a lock it signed and is penalized. Sent by the non-closer itself (with
    /// an empty `watch` and `nonCloserSig`) or by a watcher holding the non-closer's `Watch`.
    /// @param closerProof A proof signed by the closer.
    /// @param closerSig The closer's signature of `closerProof`.
    /// @param closerLocks The lock list behind `closerProof.locksRoot`.
    /// @param watch The non-closer's authorization for the caller (ignored when the caller is
    /// the non-closer).
    /// @param nonCloserSig The non-closer's signature of `watch`.
    function updateClaim(
        bytes32 channelId,
        BalanceProof calldata closerProof,
        bytes calldata closerSig,
        bytes calldata closerLocks,
        Watch calldata watch,
        bytes calldata nonCloserSig
    ) external {
        Channel storage channel = _requireState(channelId, ChannelState.Closed);
        if (channel.penalized) revert AlreadyPenalized(channelId);
        (address closer, address nonCloser) = channel.closedByParticipant1
            ? (channel.participant1, channel.participant2)
            : (channel.participant2, channel.participant1);
        address sender = _msgSender();
        if (sender == closer) revert CloserCannotUpdate(closer);

        _checkProof(channelId, closerProof, closerLocks);
        uint256 claim = channel.claimTransferred;
        bool lied = closerProof.transferredAmount > claim;
        if (!lied) {
            if (closerProof.lockedAmount == 0) revert ClaimNotExceeded(closerProof.transferredAmount, claim);
            if (closerProof.nonce <= channel.evidenceNonce) {
                revert EvidenceNotNewer(closerProof.nonce, channel.evidenceNonce);
            }
        }
        bytes32 proofDigest = _hashTypedDataV4(_hashProof(closerProof));
        SignatureRules.requireSigner(proofDigest, closerSig, closer);

        address watcher;
        uint256 reward;
        if (sender != nonCloser) {
            _checkWatch(channel, channelId, proofDigest, watch, sender);
            SignatureRules.requireSigner(_hashTypedDataV4(_hashWatch(watch)), nonCloserSig, nonCloser);
            (watcher, reward) = (watch.watcher, watch.reward);
        }

        if (lied) {
            channel.penalized = true;
            // After a penalty the declared amounts and the locks no longer decide anything (the
            // non-closer gets all); clearing them here earns their storage refund in this
            // transaction instead of costing settle more deletions.
            channel.claimTransferred = 0;
            if (channel.closerReceived != 0) channel.closerReceived = 0;
            if (channel.locksPending) _clearLocks(channel);
            if (reward != 0) (channel.watcher, channel.reward) = (watcher, reward);
            emit CloserPenalized(channelId, sender, watcher, closerProof.transferredAmount, reward);
        } else {
            // The reward belongs to whichever Watch brought the evidence held now.
            if (reward != 0) (channel.watcher, channel.reward) = (watcher, reward);
            else if (channel.evidenceNonce != 0 && channel.reward != 0) (channel.watcher, channel.reward) = (address(0), 0);
            channel.locksPending = true;
            channel.evidenceLocksRoot = closerProof.locksRoot;
            channel.evidenceNonce = closerProof.nonce;
            channel.evidenceTransferred = closerProof.transferredAmount;
            emit EvidenceSubmitted(
                channelId, sender, watcher, closerProof.nonce, closerProof.transferredAmount, closerLocks, reward
            );
        }
    }

    /// @notice Pays out a closed channel without locks once its hold period is over. Anyone may
    /// call it, so a watcher settles for phones that are offline. It cannot revert once
    /// `settleAt` passed, unless the channel holds locks (`LocksPending`): then
    /// `settleWithLocks` settles it.
    function settle(bytes32 channelId) external nonReentrant {
        Channel storage channel = _requireState(channelId, ChannelState.Closed);
        if (block.timestamp < channel.settleAt) revert HoldPeriodNotOver(channel.settleAt);
        if (channel.locksPending) revert LocksPending(channelId);
        if (channel.penalized) _settlePenalized(channel, channelId, false);
        else _settleSplit(channel, channelId, channel.claimTransferred, channel.closerReceived, false);
    }

    /// @notice Pays out a closed channel that holds locks once its hold period is over, each
    /// lock to its receiver if and only if its condition was registered at a time `t` with
    /// `0 < t < min(expiry, settleAt)`. Anyone may call it: the lists are public (from
    /// `ChannelLocksDeclared` and `EvidenceSubmitted`) and the funds can only go to the
    /// participants and the evidence's watcher. Once `settleAt` passed it cannot revert when
    /// the lists match the stored roots. On a penalized channel the lists are ignored.
    /// @param ownLocks The closer's declared locks (`ChannelLocksDeclared.ownLocks`).
    /// @param evidenceLocks The evidence's locks (the last `EvidenceSubmitted.locks`).
    /// @param partnerLocks The locks behind the partner proof
    /// (`ChannelLocksDeclared.partnerLocks`).
    function settleWithLocks(
        bytes32 channelId,
        bytes calldata ownLocks,
        bytes calldata evidenceLocks,
        bytes calldata partnerLocks
    ) external nonReentrant {
        Channel storage channel = _requireState(channelId, ChannelState.Closed);
        uint256 settleAt = channel.settleAt;
        if (block.timestamp < settleAt) revert HoldPeriodNotOver(settleAt);
        if (channel.penalized) return _settlePenalized(channel, channelId, false);
        bytes32 declared = declaredLocksOf(partnerLocks, ownLocks);
        if (declared != channel.declaredLocks) revert DeclaredLocksMismatch(channel.declaredLocks, declared);
        _requireRoot(channel.evidenceLocksRoot, evidenceLocks);

        // What the non-closer is owed: the closer's declaration against the evidence. The
        // evidence proving more is an under-declaration (a dropped lock, or a lock made after
        // the close) and penalized; otherwise the evidence's reward is not paid.
        uint256 owed = _saturatingAdd(channel.claimTransferred, Locks.claimable(ownLocks, registry, settleAt));
        if (channel.evidenceNonce != 0) {
            uint256 proven =
                _saturatingAdd(channel.evidenceTransferred, Locks.claimable(evidenceLocks, registry, settleAt));
            if (proven > owed) {
                emit CloserPenalized(channelId, _msgSender(), channel.watcher, proven, channel.reward);
                return _settlePenalized(channel, channelId, true);
            }
        }
        uint256 closerOwed = _saturatingAdd(channel.closerReceived, Locks.claimable(partnerLocks, registry, settleAt));
        _settleSplit(channel, channelId, owed, closerOwed, true);
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice The id of a pair's channel at `epoch` (any order of `a` and `b`).
    function channelIdAt(address a, address b, uint256 epoch) public pure returns (bytes32) {
        (address participant1, address participant2) = a < b ? (a, b) : (b, a);
        return keccak256(abi.encode(participant1, participant2, epoch));
    }

    /// @notice The pair's live channel (open or closed), or the id its next channel will get.
    /// @return channelId The channel id.
    /// @return epoch Its epoch (the pair's channel count, counting from 1).
    function currentChannel(address a, address b) external view returns (bytes32 channelId, uint256 epoch) {
        epoch = _settledEpoch[_pairKey(a, b)] + 1;
        channelId = channelIdAt(a, b, epoch);
    }

    /// @notice Everything stored about a channel; all zeros once it is settled.
    function channelInfo(bytes32 channelId) external view returns (ChannelInfo memory info) {
        Channel storage channel = _channels[channelId];
        info.state = channel.state;
        info.participant1 = channel.participant1;
        info.participant2 = channel.participant2;
        info.settleTimeout = channel.settleTimeout;
        if (channel.state == ChannelState.Closed) {
            info.settleAt = channel.settleAt;
            info.closer = channel.closedByParticipant1 ? channel.participant1 : channel.participant2;
        }
        info.claimTransferred = channel.claimTransferred;
        info.closerReceived = channel.closerReceived;
        info.penalized = channel.penalized;
        info.watcher = channel.watcher;
        info.reward = channel.reward;
        info.deposit1 = channel.account1.deposit;
        info.withdrawn1 = channel.account1.withdrawn;
        info.deposit2 = channel.account2.deposit;
        info.withdrawn2 = channel.account2.withdrawn;
    }

    /// @notice The lock lists and evidence a closed channel holds; all zeros without locks.
    function channelLocks(bytes32 channelId) external view returns (ChannelLocks memory locks) {
        Channel storage channel = _channels[channelId];
        locks.declaredLocks = channel.declaredLocks;
        locks.evidenceLocksRoot = channel.evidenceLocksRoot;
        locks.evidenceNonce = channel.evidenceNonce;
        locks.evidenceTransferred = channel.evidenceTransferred;
    }

    /// @notice Checks a lock list as `close` and `updateClaim` do and returns its `locksRoot`
    /// and `lockedAmount`: what a payer signs for these locks.
    function checkLocks(bytes calldata locks) external pure returns (bytes32 locksRoot, uint256 lockedAmount) {
        return Locks.check(locks);
    }

    /// @notice The commitment a close stores for its two lock lists (zero when both are empty).
    function declaredLocksOf(bytes calldata partnerLocks, bytes calldata ownLocks) public pure returns (bytes32) {
        return _declaredLocks(Locks.rootOf(partnerLocks), Locks.rootOf(ownLocks));
    }

    /// @notice What `locks` pays its receiver if the channel settled with hold period ending
    /// at `settleAt`, under the registry's entries as they are now.
    function claimableLocks(bytes calldata locks, uint256 settleAt) external view returns (uint256) {
        Locks.check(locks);
        return Locks.claimable(locks, registry, settleAt);
    }

    /// @notice A participant's total deposit and total withdrawal in a channel.
    function participantInfo(bytes32 channelId, address participant)
        external
        view
        returns (uint256 totalDeposit, uint256 totalWithdrawn)
    {
        Channel storage channel = _channels[channelId];
        Participant storage account;
        if (participant == channel.participant1) account = channel.account1;
        else if (participant == channel.participant2) account = channel.account2;
        else return (0, 0);
        return (account.deposit, account.withdrawn);
    }

    /// @notice What the channel holds: both deposits minus both withdrawals.
    function channelTotal(bytes32 channelId) external view returns (uint256) {
        return _total(_channels[channelId]);
    }

    /// @notice The EIP-712 digest a payer signs for `proof`.
    function hashBalanceProof(BalanceProof calldata proof) external view returns (bytes32) {
        return _hashTypedDataV4(_hashProof(proof));
    }

    /// @notice The EIP-712 digest a non-closer signs for `watch`.
    function hashWatch(Watch calldata watch) external view returns (bytes32) {
        return _hashTypedDataV4(_hashWatch(watch));
    }

    /// @notice The EIP-712 digest both participants sign for a withdrawal.
    function hashWithdraw(bytes32 channelId, address participant, uint256 totalWithdraw, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return
            _hashTypedDataV4(keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, participant, totalWithdraw, deadline)));
    }

    /// @notice The EIP-712 digest both participants sign for a cooperative settlement.
    function hashCooperativeSettle(bytes32 channelId, uint256 balance1, uint256 balance2, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(COOPERATIVE_SETTLE_TYPEHASH, channelId, balance1, balance2, deadline))
        );
    }

    /// @notice This network's EIP-712 domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    function _open(address partner, uint256 settleTimeout) private returns (bytes32 channelId) {
        address opener = _msgSender();
        if (partner == address(0) || partner == opener) revert InvalidPartner(partner);
        if (settleTimeout < minSettleTimeout || settleTimeout > maxSettleTimeout) {
            revert InvalidSettleTimeout(settleTimeout, minSettleTimeout, maxSettleTimeout);
        }
        (address participant1, address participant2) = opener < partner ? (opener, partner) : (partner, opener);
        uint256 epoch = _settledEpoch[_pairKey(participant1, participant2)] + 1;
        channelId = keccak256(abi.encode(participant1, participant2, epoch));
        Channel storage channel = _channels[channelId];
        if (channel.state != ChannelState.None) revert ChannelAlreadyExists(channelId);

        channel.participant1 = participant1;
        channel.state = ChannelState.Open;
        // forge-lint: disable-next-line(unsafe-typecast) bounded by maxSettleTimeout < 2^32
        channel.settleTimeout = uint32(settleTimeout);
        channel.participant2 = participant2;
        emit ChannelOpened(channelId, participant1, participant2, epoch, settleTimeout);
    }

    function _deposit(bytes32 channelId, address participant, uint256 totalDeposit) private {
        Channel storage channel = _requireState(channelId, ChannelState.Open);
        // Only the participant's own account: a per-participant cap needs no read of the
        // partner's, which keeps a deposit one cold storage read cheaper.
        Participant storage account;
        if (participant == channel.participant1) account = channel.account1;
        else if (participant == channel.participant2) account = channel.account2;
        else revert NotParticipant(channelId, participant);
        uint256 current = account.deposit;
        if (totalDeposit <= current) revert DepositNotIncreased(totalDeposit, current);
        if (totalDeposit > MAX_DEPOSIT) revert DepositTooLarge(totalDeposit, MAX_DEPOSIT);

        // forge-lint: disable-next-line(unsafe-typecast) checked against MAX_DEPOSIT above
        account.deposit = uint128(totalDeposit);
        uint256 amount = totalDeposit - current;
        uint256 balanceBefore = token.balanceOf(address(this));
        token.safeTransferFrom(_msgSender(), address(this), amount);
        uint256 received = token.balanceOf(address(this)) - balanceBefore;
        if (received != amount) revert TransferAmountMismatch(amount, received);
        emit ChannelDeposited(channelId, participant, totalDeposit);
    }

    function _requireState(bytes32 channelId, ChannelState expected) private view returns (Channel storage channel) {
        channel = _channels[channelId];
        if (channel.state != expected) revert WrongChannelState(channelId, channel.state);
    }

    function _accounts(Channel storage channel, bytes32 channelId, address participant)
        private
        view
        returns (Participant storage account, Participant storage partnerAccount, address partner)
    {
        if (participant == channel.participant1) return (channel.account1, channel.account2, channel.participant2);
        if (participant == channel.participant2) return (channel.account2, channel.account1, channel.participant1);
        revert NotParticipant(channelId, participant);
    }

    function _total(Channel storage channel) private view returns (uint256) {
        Participant memory account1 = channel.account1;
        Participant memory account2 = channel.account2;
        return uint256(account1.deposit) + account2.deposit - account1.withdrawn - account2.withdrawn;
    }

    /// @dev A proof's lock list must be the one it signed: same root, amounts summing to its
    /// `lockedAmount`, canonical and at most `MAX_LOCKS` long.
    function _checkProof(bytes32 channelId, BalanceProof calldata proof, bytes calldata locks) private pure {
        if (proof.channelId != channelId) revert ProofChannelMismatch(channelId, proof.channelId);
        if (proof.nonce == 0) revert InvalidProofNonce();
        (bytes32 root, uint256 lockedAmount) = Locks.check(locks);
        if (root != proof.locksRoot) revert LocksRootMismatch(proof.locksRoot, root);
        if (lockedAmount != proof.lockedAmount) revert LockedAmountMismatch(proof.lockedAmount, lockedAmount);
    }

    function _requireRoot(bytes32 stored, bytes calldata locks) private pure {
        bytes32 root = Locks.rootOf(locks);
        if (root != stored) revert LocksRootMismatch(stored, root);
    }

    function _declaredLocks(bytes32 partnerLocksRoot, bytes32 ownLocksRoot) private pure returns (bytes32) {
        if (partnerLocksRoot == bytes32(0) && ownLocksRoot == bytes32(0)) return bytes32(0);
        return keccak256(abi.encode(partnerLocksRoot, ownLocksRoot));
    }

    function _saturatingAdd(uint256 a, uint256 b) private pure returns (uint256) {
        unchecked {
            uint256 sum = a + b;
            return sum < a ? type(uint256).max : sum;
        }
    }

    /// @dev Penalized: the watcher gets `min(reward, TOTAL)` and the non-closer the rest.
    function _settlePenalized(Channel storage channel, bytes32 channelId, bool hadLocks) private {
        address participant1 = channel.participant1;
        address participant2 = channel.participant2;
        uint256 total = _total(channel);
        address watcher = channel.watcher;
        uint256 reward = channel.reward < total ? channel.reward : total;
        (uint256 payout1, uint256 payout2) =
            channel.closedByParticipant1 ? (uint256(0), total - reward) : (total - reward, 0);
        _deleteChannel(channel, participant1, participant2, hadLocks);
        _payOut(participant1, payout1);
        _payOut(participant2, payout2);
        _payOut(watcher, reward);
        emit ChannelSettled(channelId, payout1, payout2, watcher, reward);
    }

    /// @dev Not penalized: the split of what each side owes the other; no reward is paid.
    function _settleSplit(
        Channel storage channel,
        bytes32 channelId,
        uint256 closerOwes,
        uint256 closerIsOwed,
        bool hadLocks
    ) private {
        address participant1 = channel.participant1;
        address participant2 = channel.participant2;
        uint256 total = _total(channel);
        (uint256 transferred12, uint256 transferred21) =
            channel.closedByParticipant1 ? (closerOwes, closerIsOwed) : (closerIsOwed, closerOwes);
        (uint256 payout1, uint256 payout2) = SettlementMath.split(
            channel.account1.deposit, channel.account1.withdrawn, transferred12, transferred21, total
        );
        _deleteChannel(channel, participant1, participant2, hadLocks);
        _payOut(participant1, payout1);
        _payOut(participant2, payout2);
        emit ChannelSettled(channelId, payout1, payout2, address(0), 0);
    }

    /// @dev Forgets the lock lists and the evidence, and the reward that came with it.
    function _clearLocks(Channel storage channel) private {
        channel.locksPending = false;
        if (channel.declaredLocks != bytes32(0)) channel.declaredLocks = bytes32(0);
        if (channel.evidenceNonce != 0) {
            (channel.evidenceLocksRoot, channel.evidenceNonce, channel.evidenceTransferred) = (bytes32(0), 0, 0);
            if (channel.reward != 0) (channel.watcher, channel.reward) = (address(0), 0);
        }
    }

    function _checkWatch(
        Channel storage channel,
        bytes32 channelId,
        bytes32 proofDigest,
        Watch calldata watch,
        address sender
    ) private view {
        if (watch.channelId != channelId || watch.proofDigest != proofDigest) {
            revert WatchMismatch(watch.channelId, watch.proofDigest);
        }
        if (watch.watcher == address(0)) {
            if (watch.reward != 0) revert RewardWithoutWatcher(watch.reward);
        } else if (watch.watcher != sender) {
            revert WatcherNotAllowed(watch.watcher, sender);
        }
        uint256 closedAt = channel.settleAt - channel.settleTimeout;
        if (watch.deadline < closedAt) revert WatchExpired(watch.deadline, closedAt);
    }

    function _isEmpty(BalanceProof calldata proof) private pure returns (bool) {
        return proof.channelId == bytes32(0) && proof.nonce == 0 && proof.transferredAmount == 0
            && proof.lockedAmount == 0 && proof.locksRoot == bytes32(0) && proof.messageHash == bytes32(0);
    }

    function _hashProof(BalanceProof calldata proof) private pure returns (bytes32) {
        return keccak256(abi.encode(BALANCE_PROOF_TYPEHASH, proof));
    }

    function _hashWatch(Watch calldata watch) private pure returns (bytes32) {
        return keccak256(abi.encode(WATCH_TYPEHASH, watch));
    }

    /// @dev Zeroes only the slots that can hold something: clearing an already-zero slot costs
    /// a cold access and earns nothing, and refunds are capped at a fifth of the gas anyway. A
    /// penalty in `updateClaim` already cleared the declared amounts and the locks; without
    /// locks or a penalty there is no watcher or reward.
    function _deleteChannel(Channel storage channel, address participant1, address participant2, bool hadLocks)
        private
    {
        bool penalized = channel.penalized;
        (
            channel.participant1,
            channel.state,
            channel.closedByParticipant1,
            channel.locksPending,
            channel.settleTimeout,
            channel.settleAt
        ) = (address(0), ChannelState.None, false, false, 0, 0);
        (channel.participant2, channel.penalized) = (address(0), false);
        if (channel.account1.deposit != 0 || channel.account1.withdrawn != 0) delete channel.account1;
        if (channel.account2.deposit != 0 || channel.account2.withdrawn != 0) delete channel.account2;
        if (hadLocks) {
            if (channel.claimTransferred != 0) channel.claimTransferred = 0;
            if (channel.closerReceived != 0) channel.closerReceived = 0;
            if (channel.reward != 0) (channel.watcher, channel.reward) = (address(0), 0);
            if (channel.declaredLocks != bytes32(0)) channel.declaredLocks = bytes32(0);
            if (channel.evidenceNonce != 0) {
                (channel.evidenceLocksRoot, channel.evidenceNonce, channel.evidenceTransferred) = (bytes32(0), 0, 0);
            }
        } else if (penalized) {
            if (channel.reward != 0) (channel.watcher, channel.reward) = (address(0), 0);
        } else {
            if (channel.claimTransferred != 0) channel.claimTransferred = 0;
            if (channel.closerReceived != 0) channel.closerReceived = 0;
        }
        // The pair's next channel gets the next epoch, hence a new id.
        _settledEpoch[_pairKey(participant1, participant2)] += 1;
    }

    function _payOut(address to, uint256 amount) private {
        if (amount != 0) token.safeTransfer(to, amount);
    }

    function _pairKey(address a, address b) private pure returns (bytes32) {
        (address participant1, address participant2) = a < b ? (a, b) : (b, a);
        return keccak256(abi.encode(participant1, participant2));
    }
}
