// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "../../utils/Vm.sol";
import {SmartMeshToken} from "../../../src/SmartMeshToken.sol";
import {TokenNetwork} from "../../../src/TokenNetwork.sol";
import {ConditionRegistry} from "../../../src/ConditionRegistry.sol";
import {Locks} from "../../../src/libraries/Locks.sol";

/// @notice Drives channels with conditional payments the way phones do: each direction follows
/// DESIGN 3.4's honest off-chain steps (pay, lock, unlock, expire only after the registry check),
/// conditions are registered at random times (before, at or after expiry, or never), and closes
/// are honest or cheat (a dropped lock, an under-declared payment, a stale declaration), while
/// the non-closer, or anyone for it, submits the closer's proofs old and new. Every settle checks
/// DESIGN 3.4's invariants on what was paid; a violation is counted, never silently skipped.
contract LockHandler {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 public constant PAIRS = 3;
    uint256 private constant MAX_PENDING = 6;

    enum CloseMode {
        Honest,
        DropLock,
        UnderDeclare,
        Stale
    }

    struct Sent {
        TokenNetwork.BalanceProof proof;
        bytes sig;
        bytes locks;
    }

    struct Pair {
        uint256 index;
        uint256[2] pks;
        address[2] who; // who[0] is participant1
        bytes32 id;
        uint256 generation; // bumps at every settle: the key of its off-chain state
        uint256[2] deposit;
        bool closed;
        uint8 closer;
        CloseMode mode;
        bool watched; // the non-closer's watcher submits its latest proof before settle
        uint256 partnerSent; // index + 1 of the partner proof the closer handed in (0: none)
        bytes partnerLocks;
        bytes ownLocks;
        bytes evidenceLocks;
        bytes droppedLock;
    }

    SmartMeshToken public immutable token;
    TokenNetwork public immutable network;
    ConditionRegistry public immutable registry;
    uint256 public immutable settleTimeout;
    address public immutable watcher;

    Pair[PAIRS] private _pairs;
    mapping(bytes32 key => Sent[]) private _history;
    mapping(bytes32 key => bytes) private _pending;
    mapping(bytes32 conditionId => bytes32) private _secretOf;
    uint256 private _secrets;

    // Ghosts.
    uint256 public ghostNetworkTotal;
    bytes32[] public ghostConditions;
    mapping(bytes32 conditionId => uint256) public ghostRegisteredAt;
    uint256 public violations;
    string public lastViolation;

    // What the runs did (each case an invariant guards).
    uint256 public payments;
    uint256 public locksMade;
    uint256 public unlocks;
    uint256 public expiries;
    uint256 public registrations;
    uint256 public lateRegistrations;
    uint256 public closesByMode0;
    uint256 public cheatingCloses;
    uint256 public evidenceAccepted;
    uint256 public oldProofsSubmitted;
    uint256 public settlesWithLocks;
    uint256 public payoutChecks;
    uint256 public honestCloserChecks;
    uint256 public honestNonCloserChecks;
    uint256 public droppedLockPenalties;
    uint256 public phiComparisons;
    uint256 public locksClaimedAtSettle;

    constructor(
        SmartMeshToken token_,
        TokenNetwork network_,
        ConditionRegistry registry_,
        uint256[4] memory pks,
        address watcher_,
        uint256 settleTimeout_
    ) {
        token = token_;
        network = network_;
        registry = registry_;
        watcher = watcher_;
        settleTimeout = settleTimeout_;
        for (uint256 i; i < PAIRS; ++i) {
            (uint256 a, uint256 b) = (pks[i], pks[i + 1]);
            if (vm.addr(a) > vm.addr(b)) (a, b) = (b, a);
            _pairs[i].index = i;
            _pairs[i].pks = [a, b];
            _pairs[i].who = [vm.addr(a), vm.addr(b)];
        }
    }

    // ---------------------------------------------------------------------------------------
    // Actions
    // ---------------------------------------------------------------------------------------

    function open(uint256 pairSeed, uint256 deposit1, uint256 deposit2) public {
        Pair storage pair = _pairs[pairSeed % PAIRS];
        if (pair.id != bytes32(0)) return;
        deposit1 = _bound(deposit1, 1 ether, 1_000 ether);
        deposit2 = _bound(deposit2, 0, 1_000 ether);
        vm.prank(pair.who[0]);
        pair.id = network.open(pair.who[1], settleTimeout);
        _fund(pair, 0, deposit1);
        _fund(pair, 1, deposit2);
    }

    function pay(uint256 pairSeed, uint256 sideSeed, uint256 amountSeed) external {
        (Pair storage pair, uint8 side, bool ok) = _openPair(pairSeed, sideSeed);
        if (!ok) return;
        uint256 room = _room(pair, side);
        if (room == 0) return;
        bytes32 key = _key(pair, side);
        _sign(pair, side, _latestTransferred(key) + _bound(amountSeed, 1, room), _pending[key]);
        ++payments;
    }

    function lock(uint256 pairSeed, uint256 sideSeed, uint256 amountSeed, uint256 expirySeed) external {
        (Pair storage pair, uint8 side, bool ok) = _openPair(pairSeed, sideSeed);
        if (!ok) return;
        bytes32 key = _key(pair, side);
        uint256 room = _room(pair, side);
        if (room == 0 || _pending[key].length / 64 >= MAX_PENDING) return;
        bytes32 secret = keccak256(abi.encode("lock secret", ++_secrets));
        bytes32 conditionId = sha256(abi.encodePacked(secret));
        _secretOf[conditionId] = secret;
        // Expiries within the hold period and beyond it: the claim rule takes the earlier.
        uint256 expiry = block.timestamp + _bound(expirySeed, 1, 2 * settleTimeout);
        bytes memory encoded = abi.encodePacked(
            bytes5(uint40(expiry)), bytes16(uint128(_bound(amountSeed, 1, room))), bytes11(0), conditionId
        );
        _pending[key] = bytes.concat(_pending[key], encoded);
        _sign(pair, side, _latestTransferred(key), _pending[key]);
        ++locksMade;
    }

    /// The receiver revealed the secret: the payer folds the lock into its transferred amount.
    function unlock(uint256 pairSeed, uint256 sideSeed, uint256 indexSeed) external {
        (Pair storage pair, uint8 side, bool ok) = _openPair(pairSeed, sideSeed);
        if (!ok) return;
        bytes32 key = _key(pair, side);
        uint256 count = _pending[key].length / 64;
        if (count == 0) return;
        uint256 index = indexSeed % count;
        (, uint256 amount,) = _lockAt(_pending[key], index);
        _pending[key] = _without(_pending[key], index);
        _sign(pair, side, _latestTransferred(key) + amount, _pending[key]);
        ++unlocks;
    }

    /// `LockExpired`: only once the lock's expiry passed and the registry shows its condition
    /// unregistered or registered at or after the expiry (DESIGN 3.4's expiry rule).
    function expire(uint256 pairSeed, uint256 sideSeed, uint256 indexSeed) external {
        (Pair storage pair, uint8 side, bool ok) = _openPair(pairSeed, sideSeed);
        if (!ok) return;
        bytes32 key = _key(pair, side);
        uint256 count = _pending[key].length / 64;
        if (count == 0) return;
        uint256 index = indexSeed % count;
        (uint256 expiry,, bytes32 conditionId) = _lockAt(_pending[key], index);
        uint256 registeredAt = registry.registeredAt(conditionId);
        if (block.timestamp < expiry || (registeredAt != 0 && registeredAt < expiry)) return;
        _pending[key] = _without(_pending[key], index);
        _sign(pair, side, _latestTransferred(key), _pending[key]);
        ++expiries;
    }

    /// Someone registers a pending lock's secret now: before, at or after its expiry. The
    /// search starts at the seeds and goes on through every channel, so a call that can
    /// register something does.
    function register(uint256 pairSeed, uint256 sideSeed, uint256 indexSeed) external {
        for (uint256 k; k < 2 * PAIRS; ++k) {
            Pair storage pair = _pairs[(pairSeed % PAIRS + k / 2) % PAIRS];
            if (pair.id == bytes32(0)) continue;
            bytes memory list = _pending[_key(pair, uint8((sideSeed % 2 + k) % 2))];
            uint256 count = list.length / 64;
            for (uint256 j; j < count; ++j) {
                (uint256 expiry,, bytes32 conditionId) = _lockAt(list, (indexSeed % count + j) % count);
                if (ghostRegisteredAt[conditionId] != 0) continue;
                registry.registerSecret(_secretOf[conditionId]);
                ghostRegisteredAt[conditionId] = block.timestamp;
                ghostConditions.push(conditionId);
                ++registrations;
                if (block.timestamp >= expiry) ++lateRegistrations;
                return;
            }
        }
    }

    function warp(uint256 secondsSeed) external {
        vm.warp(block.timestamp + _bound(secondsSeed, 1 minutes, settleTimeout));
    }

    function close(uint256 pairSeed, uint256 closerSeed, uint256 modeSeed, uint256 oldSeed) public {
        (Pair storage pair, uint8 c, bool ok) = _openPair(pairSeed, closerSeed);
        if (!ok) return;
        uint8 n = 1 - c;
        bytes32 ownKey = _key(pair, c);
        bytes32 partnerKey = _key(pair, n);
        CloseMode mode = CloseMode(modeSeed % 4);
        uint256 claim = _latestTransferred(ownKey);
        bytes memory ownLocks = _pending[ownKey];
        if (mode == CloseMode.DropLock && ownLocks.length != 0) {
            uint256 index = oldSeed % (ownLocks.length / 64);
            pair.droppedLock = _slice(ownLocks, index);
            ownLocks = _without(ownLocks, index);
            // Half the time the receiver already knows the secret and registers it in time.
            if ((oldSeed >> 8) % 2 == 0) _registerNow(pair.droppedLock);
        } else if (mode == CloseMode.UnderDeclare && claim != 0) {
            claim = _bound(oldSeed, 0, claim - 1);
        } else if (mode == CloseMode.Stale && _history[ownKey].length > 1) {
            Sent storage stale = _history[ownKey][oldSeed % (_history[ownKey].length - 1)];
            claim = stale.proof.transferredAmount;
            ownLocks = stale.locks;
        } else {
            mode = CloseMode.Honest;
        }
        // The closer hands in its partner's latest proof, or (its loss) an older one.
        uint256 received = _history[partnerKey].length;
        if (received != 0 && (oldSeed >> 16) % 4 == 0) received = (oldSeed >> 24) % received + 1;
        TokenNetwork.BalanceProof memory partnerProof;
        bytes memory partnerSig;
        bytes memory partnerLocks;
        if (received != 0) {
            Sent storage sent = _history[partnerKey][received - 1];
            (partnerProof, partnerSig, partnerLocks) = (sent.proof, sent.sig, sent.locks);
        }
        vm.prank(pair.who[c]);
        try network.close(pair.id, partnerProof, partnerSig, partnerLocks, claim, ownLocks) {}
        catch {
            _violation("a close built to be valid reverted");
            return;
        }
        pair.closed = true;
        pair.closer = c;
        pair.mode = mode;
        pair.watched = (oldSeed >> 32) % 4 != 0;
        pair.partnerSent = received;
        pair.partnerLocks = partnerLocks;
        pair.ownLocks = ownLocks;
        if (mode == CloseMode.Honest) ++closesByMode0;
        else ++cheatingCloses;
    }

    /// The non-closer (or anyone for it, with a zero-reward Watch) submits one of the closer's
    /// proofs, often an old one.
    function updateClaim(uint256 pairSeed, uint256 whichSeed) external {
        (Pair storage pair, bool found) = _closedPair(pairSeed);
        if (!found) return;
        Sent[] storage sent = _history[_key(pair, pair.closer)];
        if (sent.length == 0) return;
        uint256 index = whichSeed % sent.length;
        if (_submit(pair, index, false) && index + 1 < sent.length) ++oldProofsSubmitted;
    }

    /// Settles a closed channel, closing one first when none is.
    function settle(uint256 pairSeed) external {
        (Pair storage pair, bool found) = _closedPair(pairSeed);
        if (!found) {
            close(pairSeed, pairSeed >> 8, pairSeed >> 16, pairSeed >> 24);
            (pair, found) = _closedPair(pairSeed);
            if (!found) return;
        }
        uint8 c = pair.closer;
        uint8 n = 1 - c;
        bytes32 ownKey = _key(pair, c);
        bytes32 partnerKey = _key(pair, n);
        // A watched non-closer's watcher submits the closer's latest proof before settleAt.
        if (pair.watched && _history[ownKey].length != 0) _submit(pair, _history[ownKey].length - 1, true);
        (uint256 settleAt, uint256 total, uint256 signedReward) = _hold(pair);
        if (block.timestamp < settleAt) vm.warp(settleAt);

        uint256[2] memory before = [token.balanceOf(pair.who[0]), token.balanceOf(pair.who[1])];
        uint256 watcherBefore = token.balanceOf(watcher);
        try network.settleWithLocks(pair.id, pair.ownLocks, pair.evidenceLocks, pair.partnerLocks) {}
        catch {
            _violation("settleWithLocks reverted after settleAt with the stored lists");
            return;
        }
        uint256 paidC = token.balanceOf(pair.who[c]) - before[c];
        uint256 paidN = token.balanceOf(pair.who[n]) - before[n];
        uint256 reward = token.balanceOf(watcher) - watcherBefore;
        ghostNetworkTotal -= total;
        ++settlesWithLocks;
        locksClaimedAtSettle += _claimedCount(pair.ownLocks, settleAt) + _claimedCount(pair.partnerLocks, settleAt);

        ++payoutChecks;
        if (paidC + paidN + reward != total) _violation("payouts and reward differ from TOTAL");

        uint256 phiC = _phiLatest(ownKey, settleAt);
        uint256 phiN = _phiLatest(partnerKey, settleAt);
        if (pair.mode == CloseMode.Honest) {
            ++honestCloserChecks;
            // Never pays more than Phi of its latest proof, whatever the non-closer submitted.
            uint256 phiHandedIn = pair.partnerSent == 0 ? 0 : _phi(_history[partnerKey][pair.partnerSent - 1], settleAt);
            if (paidC < _share(pair.deposit[c], phiHandedIn, phiC, total)) _violation("an honest closer lost funds");
        }
        if (pair.watched) {
            ++honestNonCloserChecks;
            if (paidN + signedReward < _share(pair.deposit[n], phiC, phiN, total)) {
                _violation("an honest non-closer got less than it is owed");
            }
            if (pair.mode == CloseMode.DropLock && pair.droppedLock.length != 0 && _claimable(pair.droppedLock, settleAt) != 0) {
                ++droppedLockPenalties;
                if (paidC != 0) _violation("a closer that dropped a claimable lock was not penalized");
            }
        }
        _checkPhiNeverFell(_history[ownKey], settleAt);
        _checkPhiNeverFell(_history[partnerKey], settleAt);

        delete _pending[ownKey];
        delete _pending[partnerKey];
        pair.id = bytes32(0);
        pair.closed = false;
        pair.evidenceLocks = "";
        pair.droppedLock = "";
        ++pair.generation;
    }

    // ---------------------------------------------------------------------------------------
    // Views for the invariants
    // ---------------------------------------------------------------------------------------

    function conditionCount() external view returns (uint256) {
        return ghostConditions.length;
    }

    function pairParticipants(uint256 index) external view returns (address, address) {
        return (_pairs[index].who[0], _pairs[index].who[1]);
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    function _submit(Pair storage pair, uint256 index, bool byWatcher) private returns (bool accepted) {
        Sent storage sent = _history[_key(pair, pair.closer)][index];
        if (sent.proof.lockedAmount == 0 && sent.proof.transferredAmount <= network.channelInfo(pair.id).claimTransferred) {
            return false; // nothing to prove
        }
        TokenNetwork.Watch memory watch;
        bytes memory watchSig;
        address sender = pair.who[1 - pair.closer];
        if (byWatcher) {
            sender = watcher;
            watch = TokenNetwork.Watch({
                channelId: pair.id,
                proofDigest: network.hashBalanceProof(sent.proof),
                watcher: watcher,
                reward: 1 ether,
                deadline: block.timestamp
            });
            watchSig = _signDigest(pair.pks[1 - pair.closer], network.hashWatch(watch));
        }
        vm.prank(sender);
        try network.updateClaim(pair.id, sent.proof, sent.sig, sent.locks, watch, watchSig) {
            accepted = true;
            if (sent.proof.lockedAmount != 0 && !network.channelInfo(pair.id).penalized) {
                pair.evidenceLocks = sent.locks;
                ++evidenceAccepted;
            }
        } catch (bytes memory reason) {
            bytes4 selector = bytes4(reason);
            if (
                selector != TokenNetwork.EvidenceNotNewer.selector && selector != TokenNetwork.AlreadyPenalized.selector
                    && selector != TokenNetwork.HoldPeriodNotOver.selector
            ) {
                _violation("an update built to be valid reverted");
            }
        }
    }

    function _closedPair(uint256 pairSeed) private view returns (Pair storage pair, bool found) {
        pair = _pairs[pairSeed % PAIRS];
        for (uint256 k; k < PAIRS; ++k) {
            pair = _pairs[(pairSeed % PAIRS + k) % PAIRS];
            if (pair.closed) return (pair, true);
        }
    }

    function _hold(Pair storage pair) private view returns (uint256 settleAt, uint256 total, uint256 reward) {
        TokenNetwork.ChannelInfo memory channel = network.channelInfo(pair.id);
        return (channel.settleAt, network.channelTotal(pair.id), channel.reward);
    }

    /// What a side gets when it was owed `gain` and owes `loss`: `deposit + gain - loss`,
    /// clamped to `[0, total]`.
    function _share(uint256 deposit, uint256 gain, uint256 loss, uint256 total) private pure returns (uint256) {
        if (deposit + gain <= loss) return 0;
        uint256 share = deposit + gain - loss;
        return share > total ? total : share;
    }

    function _checkPhiNeverFell(Sent[] storage sent, uint256 settleAt) private {
        for (uint256 i = 1; i < sent.length; ++i) {
            ++phiComparisons;
            if (_phi(sent[i], settleAt) < _phi(sent[i - 1], settleAt)) _violation("Phi fell along an honest sequence");
        }
    }

    function _phi(Sent storage sent, uint256 settleAt) private view returns (uint256) {
        return sent.proof.transferredAmount + _claimable(sent.locks, settleAt);
    }

    /// The claim rule written out again, independently of the library.
    function _claimable(bytes memory list, uint256 settleAt) private view returns (uint256 total) {
        for (uint256 i; i < list.length / 64; ++i) {
            (uint256 expiry, uint256 amount, bytes32 conditionId) = _lockAt(list, i);
            uint256 t = registry.registeredAt(conditionId);
            if (t != 0 && t < expiry && t < settleAt) total += amount;
        }
    }

    function _claimedCount(bytes memory list, uint256 settleAt) private view returns (uint256 count) {
        for (uint256 i; i < list.length / 64; ++i) {
            if (_claimable(_slice(list, i), settleAt) != 0) ++count;
        }
    }

    function _registerNow(bytes memory one) private {
        (,, bytes32 conditionId) = _lockAt(one, 0);
        if (ghostRegisteredAt[conditionId] != 0) return;
        registry.registerSecret(_secretOf[conditionId]);
        ghostRegisteredAt[conditionId] = block.timestamp;
        ghostConditions.push(conditionId);
        ++registrations;
    }

    function _openPair(uint256 pairSeed, uint256 sideSeed) private returns (Pair storage pair, uint8 side, bool ok) {
        pair = _pairs[pairSeed % PAIRS];
        if (pair.id == bytes32(0)) open(pairSeed, sideSeed, sideSeed >> 128);
        side = uint8(sideSeed % 2);
        ok = !pair.closed;
    }

    /// Capacity with locks: `T_A + L_A <= D_A + T_B`.
    function _room(Pair storage pair, uint8 side) private view returns (uint256) {
        bytes32 key = _key(pair, side);
        uint256 used = _latestTransferred(key) + _sum(_pending[key]);
        uint256 limit = pair.deposit[side] + _latestTransferred(_key(pair, 1 - side));
        return limit > used ? limit - used : 0;
    }

    function _sign(Pair storage pair, uint8 side, uint256 transferred, bytes memory list) private {
        bytes32 key = _key(pair, side);
        TokenNetwork.BalanceProof memory proof = TokenNetwork.BalanceProof({
            channelId: pair.id,
            nonce: _history[key].length + 1,
            transferredAmount: transferred,
            lockedAmount: _sum(list),
            locksRoot: list.length == 0 ? bytes32(0) : keccak256(list),
            messageHash: bytes32(0)
        });
        Sent storage sent = _history[key].push();
        sent.proof = proof;
        sent.sig = _signDigest(pair.pks[side], network.hashBalanceProof(proof));
        sent.locks = list;
    }

    function _fund(Pair storage pair, uint8 side, uint256 amount) private {
        pair.deposit[side] = amount;
        if (amount == 0) return;
        token.transfer(pair.who[side], amount);
        vm.startPrank(pair.who[side]);
        token.approve(address(network), amount);
        network.deposit(pair.id, pair.who[side], amount);
        vm.stopPrank();
        ghostNetworkTotal += amount;
    }

    function _key(Pair storage pair, uint8 side) private view returns (bytes32) {
        return keccak256(abi.encode(pair.index, pair.generation, side));
    }

    function _phiLatest(bytes32 key, uint256 settleAt) private view returns (uint256) {
        uint256 length = _history[key].length;
        return length == 0 ? 0 : _phi(_history[key][length - 1], settleAt);
    }

    function _latestTransferred(bytes32 key) private view returns (uint256) {
        uint256 length = _history[key].length;
        return length == 0 ? 0 : _history[key][length - 1].proof.transferredAmount;
    }

    function _lockAt(bytes memory list, uint256 index)
        private
        pure
        returns (uint256 expiry, uint256 amount, bytes32 conditionId)
    {
        uint256 head;
        assembly ("memory-safe") {
            let at := add(add(list, 0x20), mul(index, 64))
            head := mload(at)
            conditionId := mload(add(at, 32))
        }
        expiry = head >> 216;
        amount = uint128(head >> 88);
    }

    function _sum(bytes memory list) private pure returns (uint256 total) {
        for (uint256 i; i < list.length / 64; ++i) {
            (, uint256 amount,) = _lockAt(list, i);
            total += amount;
        }
    }

    function _slice(bytes memory list, uint256 index) private pure returns (bytes memory one) {
        one = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            one[i] = list[index * 64 + i];
        }
    }

    function _without(bytes memory list, uint256 index) private pure returns (bytes memory rest) {
        for (uint256 i; i < list.length / 64; ++i) {
            if (i != index) rest = bytes.concat(rest, _slice(list, i));
        }
    }

    function _signDigest(uint256 pk, bytes32 digest) private pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _violation(string memory what) private {
        ++violations;
        lastViolation = what;
    }

    function _bound(uint256 x, uint256 min, uint256 max) private pure returns (uint256) {
        if (max <= min) return min;
        return min + x % (max - min + 1);
    }
}
