// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "../../utils/Test.sol";
import {SmartMeshToken} from "../../../src/SmartMeshToken.sol";
import {TokenNetwork} from "../../../src/TokenNetwork.sol";

/// @notice Drives a TokenNetwork through channel lives among four actors (six pairs): open,
/// deposit, off-chain payments, withdrawals, honest and stale closes, disputes (by the victim or
/// its watcher), cooperative and ordinary settlement, time, donations, and replays of every
/// signature it ever made onto other channels, epochs, a second deployment and another chain.
/// @dev Legitimate operations are bounded to valid inputs and are expected to succeed: a revert
/// of the network is counted in `ghostUnexpectedReverts`. An action with nothing to act on
/// (say, no open channel) reverts `NothingToDo`, which forge's table reports as a revert. Actors are honest payers (never pay beyond their
/// off-chain balance) unless an action says otherwise (stale claims, colluding withdrawals),
/// and the ledgers record which side of which channel is still honest.
contract ChannelHandler is Test {
    /// @dev Four actors, six pairs: every actor has three channels to replay signatures across.
    uint256 internal constant ACTORS = 4;
    uint256 public constant PAIRS = 6;
    uint256 internal constant MAX_DEPOSIT = 1_000_000 ether;
    uint256 internal constant MAX_DONATION = 1_000 ether;
    uint256 internal constant MAX_HOLD = 2 days;
    /// @dev Withdraw and cooperative-settle signatures live long enough to be replayed later.
    uint256 internal constant SIGNATURE_LIFETIME = 365 days;
    uint256 internal constant MAX_ALIGN_STEPS = 16;

    enum Kind {
        Proof,
        Watch,
        Withdraw,
        CooperativeSettle
    }

    /// @notice A message the handler had signed, kept for replays.
    struct Record {
        Kind kind;
        uint256 pair;
        uint256 epoch;
        bytes32 channelId;
        /// @dev Executed legitimately on its own channel: any later success is a replay.
        bool consumed;
        /// @dev Proof and Watch: the side that signed the balance proof; Withdraw: the
        /// withdrawing side.
        uint256 side;
        TokenNetwork.BalanceProof proof;
        bytes proofSig;
        TokenNetwork.Watch watch;
        bytes watchSig;
        /// @dev Withdraw: the total withdrawal; CooperativeSettle: the two balances.
        uint256 amount1;
        uint256 amount2;
        uint256 deadline;
        bytes sig1;
        bytes sig2;
    }

    /// @notice The off-chain state of a channel, and how it was closed.
    struct Ledger {
        /// @dev Index 0: participant1 paid participant2; index 1: the other way.
        uint256[2] sent;
        /// @dev Both participants signed a withdrawal beyond one's off-chain balance: nobody in
        /// this channel is honest any more.
        bool colluded;
        uint256 closerSide;
        bool closerHonest;
        bool staleClaim;
        bool responded;
        uint256 signedReward;
        uint256 totalAtClose;
    }

    /// @notice One channel's end: what it held and what left the network for it.
    struct Payout {
        bytes32 channelId;
        uint256 total;
        uint256 received;
        uint256 networkPaid;
    }

    /// @notice An honest participant's outcome against its off-chain balance.
    struct HonestCheck {
        bytes32 channelId;
        address participant;
        uint256 owed;
        uint256 received;
        uint256 signedReward;
    }

    /// @notice The action has nothing to act on in this state (forge counts it as a revert, so
    /// its metrics table shows how many calls did real work).
    error NothingToDo();

    SmartMeshToken public immutable token;
    TokenNetwork public immutable network;
    /// @dev A second deployment with the same token and agent: channel ids repeat across
    /// deployments, only the EIP-712 domain tells them apart.
    TokenNetwork public immutable network2;
    uint256 public immutable minTimeout;
    uint256 internal immutable watcherPk;
    address public immutable watcher;
    /// @dev The chain the run happens on, restored after every other-chain replay. Kept as an
    /// immutable: with via-IR the optimizer may re-read `block.chainid` after `vm.chainId`
    /// changed it instead of keeping an earlier read in a local.
    uint256 internal immutable homeChainId;

    uint256[ACTORS] internal pks;
    address[ACTORS] public actors;
    /// @dev pair => side (0: participant1, the lower address) => actor index.
    uint256[2][PAIRS] internal sideActor;

    mapping(bytes32 channelId => Ledger) internal ledgers;
    /// @dev The record ids of each side's balance proofs, in nonce order.
    mapping(bytes32 channelId => mapping(uint256 side => uint256[])) internal proofRecords;
    Record[] internal records;
    Payout[] internal payouts;
    HonestCheck[] internal honestChecks;

    // Ghosts.
    uint256 public ghostNetworkTotal;
    uint256 public ghostDonated;
    uint256 public ghostDonated2;
    uint256 public ghostReplayAttempts;
    uint256 public ghostReplayAccepted;
    uint256 public ghostUnexpectedReverts;
    uint256 public ghostSettleReverts;
    uint256 public ghostTransferMismatches;
    string public lastUnexpectedAction;
    bytes public lastUnexpectedRevert;
    uint256 public lastAcceptedReplay;

    // Successful calls, for the run summary.
    uint256 public opens;
    uint256 public deposits;
    uint256 public payments;
    uint256 public withdrawals;
    uint256 public colludingWithdrawals;
    uint256 public closes;
    uint256 public staleCloses;
    uint256 public updates;
    uint256 public cooperativeSettles;
    uint256 public settles;
    uint256 public penalizedSettles;
    uint256 public unguardedStaleSettles;
    uint256 public warps;
    uint256 public donations;
    uint256[3] public replaysByMode;

    constructor(
        SmartMeshToken token_,
        TokenNetwork network_,
        TokenNetwork network2_,
        uint256[ACTORS] memory actorPks,
        uint256 watcherPk_,
        uint256 minTimeout_
    ) {
        token = token_;
        network = network_;
        network2 = network2_;
        minTimeout = minTimeout_;
        watcherPk = watcherPk_;
        watcher = vm.addr(watcherPk_);
        homeChainId = block.chainid;
        for (uint256 i; i < ACTORS; ++i) {
            pks[i] = actorPks[i];
            actors[i] = vm.addr(actorPks[i]);
        }
        uint256 pair;
        for (uint256 i; i < ACTORS; ++i) {
            for (uint256 j = i + 1; j < ACTORS; ++j) {
                (sideActor[pair][0], sideActor[pair][1]) = actors[i] < actors[j] ? (i, j) : (j, i);
                ++pair;
            }
        }
        token_.approve(address(network_), type(uint256).max);
        token_.approve(address(network2_), type(uint256).max);
    }

    // -------------------------------------------------------------------------------------------
    // Actions
    // -------------------------------------------------------------------------------------------

    function open(uint256 pairSeed, uint256 openerSeed, uint256 timeoutSeed, uint256 deposit1, uint256 deposit2)
        external
    {
        (bool found, uint256 pair, bytes32 id,) = _find(network, pairSeed, TokenNetwork.ChannelState.None);
        if (!found) revert NothingToDo();
        uint256 opener = openerSeed % 2;
        uint256 timeout = bound(timeoutSeed, minTimeout, MAX_HOLD);
        if (!_expect(
                network,
                _addr(pair, opener),
                abi.encodeCall(TokenNetwork.open, (_addr(pair, 1 - opener), timeout)),
                "open"
            )) {
            return;
        }
        ++opens;
        // Half the channels are funded by the opener alone: its partner can then only withdraw
        // what it was paid (W > D), the case where settle arithmetic is easiest to get wrong.
        uint256 openerDeposit = bound(deposit1, 1, MAX_DEPOSIT);
        uint256 partnerDeposit = (openerSeed >> 1) % 2 == 0 ? 0 : bound(deposit2, 0, MAX_DEPOSIT);
        _deposit(pair, id, opener, openerDeposit);
        if (partnerDeposit != 0) _deposit(pair, id, 1 - opener, partnerDeposit);
    }

    function deposit(uint256 pairSeed, uint256 sideSeed, uint256 amountSeed) external {
        (bool found, uint256 pair, bytes32 id,) = _find(network, pairSeed, TokenNetwork.ChannelState.Open);
        if (!found) revert NothingToDo();
        _deposit(pair, id, sideSeed % 2, bound(amountSeed, 1, MAX_DEPOSIT));
    }

    /// @notice An off-chain payment: the payer signs a new balance proof and hands it over.
    function pay(uint256 pairSeed, uint256 sideSeed, uint256 amountSeed) external {
        (bool found, uint256 pair, bytes32 id, uint256 epoch) = _find(network, pairSeed, TokenNetwork.ChannelState.Open);
        if (!found) revert NothingToDo();
        uint256 side = sideSeed % 2;
        int256 balance = _offChainBalance(id, _addr(pair, side), side);
        if (balance < 1) {
            side = 1 - side;
            balance = _offChainBalance(id, _addr(pair, side), side);
            if (balance < 1) revert NothingToDo();
        }
        Ledger storage ledger = ledgers[id];
        ledger.sent[side] += bound(amountSeed, 1, uint256(balance));

        TokenNetwork.BalanceProof memory proof = TokenNetwork.BalanceProof({
            channelId: id,
            nonce: proofRecords[id][side].length + 1,
            transferredAmount: ledger.sent[side],
            lockedAmount: 0,
            locksRoot: bytes32(0),
            messageHash: keccak256(abi.encode(id, side, ledger.sent[side]))
        });
        Record storage record = _newRecord(Kind.Proof, pair, epoch, id);
        record.side = side;
        record.proof = proof;
        record.proofSig = _sign(_pk(pair, side), network.hashBalanceProof(proof));
        proofRecords[id][side].push(records.length - 1);
        ++payments;
    }

    /// @notice Both participants sign a withdrawal; one in eight lets a colluding pair withdraw
    /// up to the contract's cap, beyond the withdrawer's off-chain balance.
    function withdraw(uint256 pairSeed, uint256 sideSeed, uint256 amountSeed, uint256 colludeSeed) external {
        (bool found, uint256 pair, bytes32 id, uint256 epoch) = _find(network, pairSeed, TokenNetwork.ChannelState.Open);
        if (!found) revert NothingToDo();
        bool collude = colludeSeed % 8 == 0;
        uint256 side = sideSeed % 2;
        (uint256 maxAmount, uint256 ownWithdrawn, int256 balance) = _withdrawRoom(pair, id, side, collude);
        if (maxAmount == 0) {
            side = 1 - side;
            (maxAmount, ownWithdrawn, balance) = _withdrawRoom(pair, id, side, collude);
            if (maxAmount == 0) revert NothingToDo();
        }
        address participant = _addr(pair, side);
        uint256 amount = bound(amountSeed, 1, maxAmount);

        Record storage record = _newRecord(Kind.Withdraw, pair, epoch, id);
        record.side = side;
        record.amount1 = ownWithdrawn + amount;
        record.deadline = block.timestamp + SIGNATURE_LIFETIME;
        bytes32 digest = network.hashWithdraw(id, participant, record.amount1, record.deadline);
        record.sig1 = _sign(_pk(pair, side), digest);
        record.sig2 = _sign(_pk(pair, 1 - side), digest);

        uint256 before = token.balanceOf(participant);
        bytes memory data = abi.encodeCall(
            TokenNetwork.withdraw, (id, participant, record.amount1, record.deadline, record.sig1, record.sig2)
        );
        if (!_expect(network, address(this), data, "withdraw")) return;
        record.consumed = true;
        ghostNetworkTotal -= amount;
        if (token.balanceOf(participant) - before != amount) ++ghostTransferMismatches;
        if (int256(amount) > balance) {
            ledgers[id].colluded = true;
            ++colludingWithdrawals;
        }
        ++withdrawals;
    }

    /// @notice Closes with the closer's true claim (a third of the time), a stale one (an older,
    /// smaller amount it signed), or an over-declaration up to 2^256 - 1; the partner proof is
    /// usually the latest one received, sometimes an older one or none.
    function close(uint256 pairSeed, uint256 closerSeed, uint256 modeSeed, uint256 claimSeed, uint256 proofSeed)
        external
    {
        (bool found, uint256 pair, bytes32 id,) = _find(network, pairSeed, TokenNetwork.ChannelState.Open);
        if (!found) revert NothingToDo();
        uint256 mode = modeSeed % 6;
        uint256 side = closerSeed % 2;
        // A stale claim needs a closer that has paid something.
        if (mode < 3 && proofRecords[id][side].length == 0) side = 1 - side;
        Ledger storage ledger = ledgers[id];
        uint256[] storage mine = proofRecords[id][side];
        uint256 claim = ledger.sent[side];
        bool stale;
        if (mode < 3 && mine.length != 0) {
            // Index k - 1 is an older proof than the latest (index length - 1); k = 0: nothing.
            uint256 k = bound(claimSeed, 0, mine.length - 1);
            claim = k == 0 ? 0 : records[mine[k - 1]].proof.transferredAmount;
            stale = true;
        } else if (mode == 3) {
            claim = bound(claimSeed, claim + 1, type(uint256).max);
        }

        (TokenNetwork.BalanceProof memory proof, bytes memory sig, uint256 usedRecord, bool latest) =
            _partnerProof(id, 1 - side, proofSeed);
        bytes memory data = abi.encodeCall(TokenNetwork.close, (id, proof, sig, "", claim, ""));
        if (!_expect(network, _addr(pair, side), data, "close")) return;
        if (usedRecord != type(uint256).max) records[usedRecord].consumed = true;
        ledger.closerSide = side;
        ledger.closerHonest = claim == ledger.sent[side] && latest;
        ledger.staleClaim = stale;
        ledger.totalAtClose = network.channelTotal(id);
        ++closes;
        if (stale) ++staleCloses;
    }

    /// @notice The victim of a stale claim, or its watcher (named with a reward, or open to
    /// anyone without one), submits the closer's latest proof.
    function updateClaim(uint256 pairSeed, uint256 viaSeed, uint256 rewardSeed, uint256 deadlineSeed) external {
        (bool found, uint256 pair, bytes32 id, uint256 epoch) = _findDisputable(pairSeed);
        if (!found) revert NothingToDo();
        Ledger storage ledger = ledgers[id];
        uint256 closerSide = ledger.closerSide;
        uint256[] storage closerProofs = proofRecords[id][closerSide];
        uint256 proofRecord = closerProofs[closerProofs.length - 1];
        TokenNetwork.BalanceProof memory proof = records[proofRecord].proof;
        bytes memory proofSig = records[proofRecord].proofSig;

        uint256 via = viaSeed % 3;
        uint256 reward;
        bool ok;
        if (via == 0) {
            TokenNetwork.Watch memory none;
            bytes memory data = abi.encodeCall(TokenNetwork.updateClaim, (id, proof, proofSig, "", none, ""));
            ok = _expect(network, _addr(pair, 1 - closerSide), data, "updateClaim (self)");
        } else {
            TokenNetwork.ChannelInfo memory channel = network.channelInfo(id);
            reward = via == 1 ? bound(rewardSeed, 0, 2 * ledger.totalAtClose + 1) : 0;
            Record storage record = _newRecord(Kind.Watch, pair, epoch, id);
            record.side = closerSide;
            record.proof = proof;
            record.proofSig = proofSig;
            record.watch = TokenNetwork.Watch({
                channelId: id,
                proofDigest: network.hashBalanceProof(proof),
                watcher: via == 1 ? watcher : address(0),
                reward: reward,
                deadline: channel.settleAt - channel.settleTimeout + bound(deadlineSeed, 0, 30 days)
            });
            record.watchSig = _sign(_pk(pair, 1 - closerSide), network.hashWatch(record.watch));
            bytes memory data =
                abi.encodeCall(TokenNetwork.updateClaim, (id, proof, proofSig, "", record.watch, record.watchSig));
            ok = _expect(network, watcher, data, "updateClaim (watcher)");
            if (ok) record.consumed = true;
        }
        if (!ok) return;
        records[proofRecord].consumed = true;
        ledger.responded = true;
        ledger.signedReward = reward;
        ++updates;
    }

    function cooperativeSettle(uint256 pairSeed) external {
        (bool found, uint256 pair, bytes32 id, uint256 epoch) = _find(network, pairSeed, TokenNetwork.ChannelState.Open);
        if (!found || ledgers[id].colluded) revert NothingToDo();
        (address p1, address p2) = (_addr(pair, 0), _addr(pair, 1));
        uint256 total = network.channelTotal(id);
        // Honest balances are never negative and always add up to what the channel holds.
        uint256 balance1 = uint256(_offChainBalance(id, p1, 0));
        uint256 balance2 = uint256(_offChainBalance(id, p2, 1));

        Record storage record = _newRecord(Kind.CooperativeSettle, pair, epoch, id);
        (record.amount1, record.amount2) = (balance1, balance2);
        record.deadline = block.timestamp + SIGNATURE_LIFETIME;
        bytes32 digest = network.hashCooperativeSettle(id, balance1, balance2, record.deadline);
        record.sig1 = _sign(_pk(pair, 0), digest);
        record.sig2 = _sign(_pk(pair, 1), digest);

        uint256[3] memory before = [token.balanceOf(p1), token.balanceOf(p2), token.balanceOf(address(network))];
        bytes memory data = abi.encodeCall(
            TokenNetwork.cooperativeSettle, (id, balance1, balance2, record.deadline, record.sig1, record.sig2)
        );
        if (!_expect(network, address(this), data, "cooperativeSettle")) return;
        record.consumed = true;
        uint256 received1 = token.balanceOf(p1) - before[0];
        uint256 received2 = token.balanceOf(p2) - before[1];
        payouts.push(Payout(id, total, received1 + received2, before[2] - token.balanceOf(address(network))));
        honestChecks.push(HonestCheck(id, p1, balance1, received1, 0));
        honestChecks.push(HonestCheck(id, p2, balance2, received2, 0));
        ghostNetworkTotal -= total;
        ++cooperativeSettles;
    }

    /// @notice Settles a closed channel, first waiting out its hold period if needed.
    function settle(uint256 pairSeed) external {
        (bool found, uint256 pair, bytes32 id,) = _find(network, pairSeed, TokenNetwork.ChannelState.Closed);
        if (!found) revert NothingToDo();
        TokenNetwork.ChannelInfo memory channel = network.channelInfo(id);
        if (block.timestamp < channel.settleAt) vm.warp(channel.settleAt);
        Ledger storage ledger = ledgers[id];
        uint256 closerSide = ledger.closerSide;
        address closer = _addr(pair, closerSide);
        address nonCloser = _addr(pair, 1 - closerSide);
        uint256 total = ledger.totalAtClose;
        uint256 owedCloser = _owed(id, closer, closerSide, total);
        uint256 owedNonCloser = _owed(id, nonCloser, 1 - closerSide, total);

        uint256[4] memory before = [
            token.balanceOf(closer),
            token.balanceOf(nonCloser),
            token.balanceOf(watcher),
            token.balanceOf(address(network))
        ];
        if (!_expect(network, address(this), abi.encodeCall(TokenNetwork.settle, (id)), "settle")) {
            ++ghostSettleReverts;
            return;
        }
        uint256 receivedCloser = token.balanceOf(closer) - before[0];
        uint256 receivedNonCloser = token.balanceOf(nonCloser) - before[1];
        uint256 reward = token.balanceOf(watcher) - before[2];
        payouts.push(
            Payout(
                id, total, receivedCloser + receivedNonCloser + reward, before[3] - token.balanceOf(address(network))
            )
        );
        ghostNetworkTotal -= total;
        ++settles;
        if (channel.penalized) ++penalizedSettles;

        if (ledger.colluded) return;
        if (ledger.closerHonest) honestChecks.push(HonestCheck(id, closer, owedCloser, receivedCloser, 0));
        if (!ledger.staleClaim) {
            honestChecks.push(HonestCheck(id, nonCloser, owedNonCloser, receivedNonCloser, 0));
        } else if (ledger.responded) {
            honestChecks.push(HonestCheck(id, nonCloser, owedNonCloser, receivedNonCloser, ledger.signedReward));
        } else {
            // The victim never answered: the invariant promises it nothing.
            ++unguardedStaleSettles;
        }
    }

    function warp(uint256 secondsSeed) external {
        vm.warp(block.timestamp + bound(secondsSeed, 1, MAX_HOLD));
        ++warps;
    }

    /// @notice Sends tokens to a network directly, outside any channel.
    function donate(uint256 amountSeed, bool toSecond) external {
        uint256 amount = bound(amountSeed, 1, MAX_DONATION);
        token.transfer(toSecond ? address(network2) : address(network), amount);
        if (toSecond) ghostDonated2 += amount;
        else ghostDonated += amount;
        ++donations;
    }

    /// @notice Tries a recorded signature where it must not work: mode 0 on this network (a
    /// used message again, or another channel or epoch), mode 1 on the second deployment (same
    /// channel id where the epochs allow), mode 2 on this network under another chain id.
    function replay(uint256 recordSeed, uint256 modeSeed, uint256 targetSeed) external {
        if (records.length == 0) revert NothingToDo();
        uint256 recordId = bound(recordSeed, 0, records.length - 1);
        Record storage record = records[recordId];
        uint256 mode = modeSeed % 3;
        if (mode == 0) _replaySameChain(recordId, record, targetSeed);
        else if (mode == 1) _replayOtherNetwork(recordId, record, targetSeed);
        else _replayOtherChain(recordId, record, targetSeed);
        ++replaysByMode[mode];
    }

    // -------------------------------------------------------------------------------------------
    // Views for the invariants
    // -------------------------------------------------------------------------------------------

    function pairParticipants(uint256 pair) external view returns (address, address) {
        return (_addr(pair, 0), _addr(pair, 1));
    }

    function payoutCount() external view returns (uint256) {
        return payouts.length;
    }

    function payoutAt(uint256 i) external view returns (Payout memory) {
        return payouts[i];
    }

    function honestCheckCount() external view returns (uint256) {
        return honestChecks.length;
    }

    function honestCheckAt(uint256 i) external view returns (HonestCheck memory) {
        return honestChecks[i];
    }

    function recordCount() external view returns (uint256) {
        return records.length;
    }

    // -------------------------------------------------------------------------------------------
    // Replays
    // -------------------------------------------------------------------------------------------

    function _replaySameChain(uint256 recordId, Record storage record, uint256 targetSeed) private {
        (bytes32 current,) = network.currentChannel(_addr(record.pair, 0), _addr(record.pair, 1));
        bool pending = current == record.channelId && !record.consumed
            && network.channelInfo(current).state != TokenNetwork.ChannelState.None;
        uint256 targetPair = record.pair;
        // A message not yet used on its own live channel is legitimately usable there once:
        // send it to another of the recipient's channels instead.
        if (pending || targetSeed % 2 == 0) targetPair = _otherPairOf(record, targetSeed);
        (bytes32 target,) = network.currentChannel(_addr(targetPair, 0), _addr(targetPair, 1));
        _attempt(network, recordId, record, target, false);
        if (target != record.channelId) _attempt(network, recordId, record, target, true);
    }

    function _replayOtherNetwork(uint256 recordId, Record storage record, uint256 targetSeed) private {
        bool aligned = _alignNetwork2(record.pair, record.epoch);
        (bytes32 target,) = network2.currentChannel(_addr(record.pair, 0), _addr(record.pair, 1));
        _prepareNetwork2(record, target, targetSeed);
        _attempt(network2, recordId, record, target, false);
        if (!aligned) _attempt(network2, recordId, record, target, true);
    }

    function _replayOtherChain(uint256 recordId, Record storage record, uint256 chainSeed) private {
        vm.chainId(homeChainId + 1 + chainSeed % 1000);
        _attempt(network, recordId, record, record.channelId, false);
        vm.chainId(homeChainId);
    }

    /// @dev Submits `record` to `target` on `net`, with the signed channel ids kept as signed
    /// (`rewrite` false) or changed to `target`; any success is a replay.
    function _attempt(TokenNetwork net, uint256 recordId, Record storage record, bytes32 target, bool rewrite) private {
        address caller = address(this);
        bytes memory data;
        if (record.kind == Kind.Proof || record.kind == Kind.Watch) {
            TokenNetwork.BalanceProof memory proof = record.proof;
            if (rewrite) proof.channelId = target;
            if (record.kind == Kind.Watch) {
                TokenNetwork.Watch memory watch = record.watch;
                if (rewrite) watch.channelId = target;
                caller = watcher;
                data =
                    abi.encodeCall(TokenNetwork.updateClaim, (target, proof, record.proofSig, "", watch, record.watchSig));
            } else {
                caller = _addr(record.pair, 1 - record.side);
                TokenNetwork.ChannelInfo memory channel = net.channelInfo(target);
                if (channel.state == TokenNetwork.ChannelState.Closed && channel.closer != caller) {
                    TokenNetwork.Watch memory none;
                    data = abi.encodeCall(TokenNetwork.updateClaim, (target, proof, record.proofSig, "", none, ""));
                } else {
                    data = abi.encodeCall(TokenNetwork.close, (target, proof, record.proofSig, "", 0, ""));
                }
            }
        } else if (record.kind == Kind.Withdraw) {
            data = abi.encodeCall(
                TokenNetwork.withdraw,
                (target, _addr(record.pair, record.side), record.amount1, record.deadline, record.sig1, record.sig2)
            );
        } else {
            data = abi.encodeCall(
                TokenNetwork.cooperativeSettle,
                (target, record.amount1, record.amount2, record.deadline, record.sig1, record.sig2)
            );
        }
        ++ghostReplayAttempts;
        (bool ok,) = _call(net, caller, data);
        if (ok) {
            ++ghostReplayAccepted;
            lastAcceptedReplay = recordId;
        }
    }

    /// @dev Another pair that contains the record's recipient (Proof), watcher's principal
    /// (Watch) or participant (Withdraw); any other pair for a cooperative settle.
    function _otherPairOf(Record storage record, uint256 seed) private view returns (uint256) {
        uint256 actor =
            record.kind == Kind.Proof ? sideActor[record.pair][1 - record.side] : sideActor[record.pair][record.side];
        for (uint256 k = 1; k < PAIRS; ++k) {
            uint256 pair = (record.pair + k + seed % PAIRS) % PAIRS;
            if (pair == record.pair) continue;
            if (record.kind == Kind.CooperativeSettle || sideActor[pair][0] == actor || sideActor[pair][1] == actor) {
                return pair;
            }
        }
        return (record.pair + 1) % PAIRS;
    }

    /// @dev Moves the pair on the second deployment to `epoch` by opening and cooperatively
    /// settling (or settling) channels, so that a replay there carries the exact channel id.
    function _alignNetwork2(uint256 pair, uint256 epoch) private returns (bool) {
        (address p1, address p2) = (_addr(pair, 0), _addr(pair, 1));
        for (uint256 step; step < MAX_ALIGN_STEPS; ++step) {
            (bytes32 id, uint256 current) = network2.currentChannel(p1, p2);
            if (current >= epoch) return current == epoch;
            TokenNetwork.ChannelInfo memory channel = network2.channelInfo(id);
            if (channel.state == TokenNetwork.ChannelState.None) {
                if (!_expect(network2, p1, abi.encodeCall(TokenNetwork.open, (p2, minTimeout)), "network2 open")) {
                    return false;
                }
                channel.state = TokenNetwork.ChannelState.Open;
            }
            if (channel.state == TokenNetwork.ChannelState.Open) {
                uint256 balance1 = channel.deposit1 - channel.withdrawn1;
                uint256 balance2 = channel.deposit2 - channel.withdrawn2;
                uint256 deadline = block.timestamp;
                bytes32 digest = network2.hashCooperativeSettle(id, balance1, balance2, deadline);
                bytes memory data = abi.encodeCall(
                    TokenNetwork.cooperativeSettle,
                    (id, balance1, balance2, deadline, _sign(_pk(pair, 0), digest), _sign(_pk(pair, 1), digest))
                );
                if (!_expect(network2, address(this), data, "network2 cooperativeSettle")) return false;
            } else if (block.timestamp >= channel.settleAt) {
                if (!_expect(network2, address(this), abi.encodeCall(TokenNetwork.settle, (id)), "network2 settle")) {
                    return false;
                }
            } else {
                return false;
            }
        }
        return false;
    }

    /// @dev Puts the second deployment's channel in a state where the replayed message would
    /// pass every check but its signature.
    function _prepareNetwork2(Record storage record, bytes32 id, uint256 seed) private {
        uint256 pair = record.pair;
        TokenNetwork.ChannelInfo memory channel = network2.channelInfo(id);
        if (channel.state == TokenNetwork.ChannelState.None) {
            uint256 opener = record.kind == Kind.Proof ? 1 - record.side : 0;
            bytes memory data = abi.encodeCall(TokenNetwork.open, (_addr(pair, 1 - opener), minTimeout));
            if (!_expect(network2, _addr(pair, opener), data, "network2 open")) return;
            channel.state = TokenNetwork.ChannelState.Open;
        }
        if (channel.state != TokenNetwork.ChannelState.Open) return;
        if (record.kind == Kind.Watch || (record.kind == Kind.Proof && seed % 2 == 0)) {
            // Closed by the proof's signer with nothing declared: only the signature can stop
            // the dispute.
            TokenNetwork.BalanceProof memory none;
            bytes memory data = abi.encodeCall(TokenNetwork.close, (id, none, "", "", 0, ""));
            _expect(network2, _addr(pair, record.side), data, "network2 close");
        } else if (record.kind == Kind.Withdraw) {
            uint256 side = record.side;
            (uint256 ownDeposit, uint256 ownWithdrawn) = network2.participantInfo(id, _addr(pair, side));
            (uint256 partnerDeposit, uint256 partnerWithdrawn) = network2.participantInfo(id, _addr(pair, 1 - side));
            uint256 room = ownDeposit + partnerDeposit - partnerWithdrawn;
            if (record.amount1 > ownWithdrawn && record.amount1 > room) {
                _fundNetwork2(id, _addr(pair, side), ownDeposit + record.amount1 - room);
            }
        } else if (record.kind == Kind.CooperativeSettle) {
            uint256 total = network2.channelTotal(id);
            uint256 wanted = record.amount1 + record.amount2;
            if (total < wanted) {
                (uint256 deposit1,) = network2.participantInfo(id, _addr(pair, 0));
                _fundNetwork2(id, _addr(pair, 0), deposit1 + wanted - total);
            }
        }
    }

    function _fundNetwork2(bytes32 id, address participant, uint256 totalDeposit) private {
        _expect(
            network2,
            address(this),
            abi.encodeCall(TokenNetwork.deposit, (id, participant, totalDeposit)),
            "network2 deposit"
        );
    }

    // -------------------------------------------------------------------------------------------
    // Helpers
    // -------------------------------------------------------------------------------------------

    function _deposit(uint256 pair, bytes32 id, uint256 side, uint256 amount) private {
        address participant = _addr(pair, side);
        (uint256 current,) = network.participantInfo(id, participant);
        bytes memory data = abi.encodeCall(TokenNetwork.deposit, (id, participant, current + amount));
        if (!_expect(network, address(this), data, "deposit")) return;
        ghostNetworkTotal += amount;
        ++deposits;
    }

    /// @dev How much `side` may withdraw: up to its off-chain balance, or (colluding) up to
    /// what the contract allows, `D1 + D2 - W_partner - W_own`.
    function _withdrawRoom(uint256 pair, bytes32 id, uint256 side, bool collude)
        private
        view
        returns (uint256 maxAmount, uint256 ownWithdrawn, int256 balance)
    {
        uint256 ownDeposit;
        (ownDeposit, ownWithdrawn) = network.participantInfo(id, _addr(pair, side));
        (uint256 partnerDeposit, uint256 partnerWithdrawn) = network.participantInfo(id, _addr(pair, 1 - side));
        uint256 cap = ownDeposit + partnerDeposit - partnerWithdrawn - ownWithdrawn;
        balance = _offChainBalance(id, _addr(pair, side), side);
        maxAmount = collude ? cap : (balance <= 0 ? 0 : _min(uint256(balance), cap));
    }

    /// @dev The latest proof `side` signed on `id`, sometimes an older one or none;
    /// `usedRecord` is `type(uint256).max` when none is used.
    function _partnerProof(bytes32 id, uint256 side, uint256 seed)
        private
        view
        returns (TokenNetwork.BalanceProof memory proof, bytes memory sig, uint256 usedRecord, bool latest)
    {
        uint256[] storage theirs = proofRecords[id][side];
        usedRecord = type(uint256).max;
        latest = true;
        if (theirs.length == 0) return (proof, sig, usedRecord, latest);
        uint256 choice = seed % 4;
        if (choice == 0) return (proof, sig, usedRecord, false);
        usedRecord = theirs[theirs.length - 1];
        if (choice == 1 && theirs.length > 1) {
            usedRecord = theirs[bound(seed >> 2, 0, theirs.length - 2)];
            latest = false;
        }
        proof = records[usedRecord].proof;
        sig = records[usedRecord].proofSig;
    }

    /// @dev The first pair at or after `seed` whose channel on `net` is in `state`.
    function _find(TokenNetwork net, uint256 seed, TokenNetwork.ChannelState state)
        private
        view
        returns (bool found, uint256 pair, bytes32 id, uint256 epoch)
    {
        for (uint256 k; k < PAIRS; ++k) {
            pair = (seed % PAIRS + k) % PAIRS;
            (id, epoch) = net.currentChannel(_addr(pair, 0), _addr(pair, 1));
            if (net.channelInfo(id).state == state) return (true, pair, id, epoch);
        }
    }

    /// @dev A closed channel with a stale claim that nobody has disputed yet.
    function _findDisputable(uint256 seed) private view returns (bool found, uint256 pair, bytes32 id, uint256 epoch) {
        for (uint256 k; k < PAIRS; ++k) {
            pair = (seed % PAIRS + k) % PAIRS;
            (id, epoch) = network.currentChannel(_addr(pair, 0), _addr(pair, 1));
            Ledger storage ledger = ledgers[id];
            if (
                network.channelInfo(id).state == TokenNetwork.ChannelState.Closed && ledger.staleClaim
                    && !ledger.responded
            ) return (true, pair, id, epoch);
        }
    }

    /// @dev `D - W + received - paid` for `participant`, from the chain and the ledger.
    function _offChainBalance(bytes32 id, address participant, uint256 side) private view returns (int256) {
        (uint256 deposited, uint256 withdrawn) = network.participantInfo(id, participant);
        Ledger storage ledger = ledgers[id];
        return int256(deposited) - int256(withdrawn) + int256(ledger.sent[1 - side]) - int256(ledger.sent[side]);
    }

    function _owed(bytes32 id, address participant, uint256 side, uint256 total) private view returns (uint256) {
        int256 balance = _offChainBalance(id, participant, side);
        if (balance <= 0) return 0;
        return _min(uint256(balance), total);
    }

    function _newRecord(Kind kind, uint256 pair, uint256 epoch, bytes32 id) private returns (Record storage record) {
        record = records.push();
        record.kind = kind;
        record.pair = pair;
        record.epoch = epoch;
        record.channelId = id;
    }

    function _call(TokenNetwork net, address caller, bytes memory data) private returns (bool ok, bytes memory ret) {
        vm.prank(caller);
        (ok, ret) = address(net).call(data);
    }

    /// @dev A call the handler built to be valid: a revert is a finding.
    function _expect(TokenNetwork net, address caller, bytes memory data, string memory action)
        private
        returns (bool ok)
    {
        bytes memory ret;
        (ok, ret) = _call(net, caller, data);
        if (!ok) {
            ++ghostUnexpectedReverts;
            lastUnexpectedAction = action;
            lastUnexpectedRevert = ret;
        }
    }

    function _sign(uint256 pk, bytes32 digest) private pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _addr(uint256 pair, uint256 side) private view returns (address) {
        return actors[sideActor[pair][side]];
    }

    function _pk(uint256 pair, uint256 side) private view returns (uint256) {
        return pks[sideActor[pair][side]];
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
