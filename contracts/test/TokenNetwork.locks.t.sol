// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {LockFixture} from "./utils/LockFixture.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {Locks} from "../src/libraries/Locks.sol";

/// The SmartMesh Condition in a channel (DESIGN 3.4): lock lists at close, evidence in
/// updateClaim, and the claim rule at settleWithLocks.
contract TokenNetworkLocksTest is LockFixture {
    bytes32 internal constant SECRET = keccak256("Brandon learns it from Carol");
    bytes32 internal constant OTHER_SECRET = keccak256("never revealed");
    uint256 internal constant ALICE_DEPOSIT = 100 ether;
    uint256 internal constant BRANDON_DEPOSIT = 50 ether;

    bytes32 internal channelId;
    uint256 internal expiry;
    /// Alice's one pending lock toward Brandon: 10 SMT on SECRET, expiring in 12 hours. Kept
    /// in storage because building it calls the sha256 precompile, which would take the place
    /// of the call a `vm.prank` or `vm.expectRevert` is meant for.
    bytes internal aliceLocks;
    bytes32 internal secretId;
    bytes32 internal otherId;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(ALICE_DEPOSIT, BRANDON_DEPOSIT);
        expiry = block.timestamp + 12 hours;
        secretId = hashlock(SECRET);
        otherId = hashlock(OTHER_SECRET);
        aliceLocks = listOf(lockOf(expiry, 10 ether, secretId));
    }

    function balances() internal view returns (uint256, uint256) {
        return (token.balanceOf(alice), token.balanceOf(brandon));
    }

    function afterHold() internal {
        vm.warp(info(channelId).settleAt);
    }

    // ---------------------------------------------------------------------------------------
    // The encoding
    // ---------------------------------------------------------------------------------------

    function test_checkLocks_returnsTheRootAndSumOfTheEncoding() public view {
        bytes memory list =
            listOf(lockOf(expiry, 10 ether, secretId), lockOf(expiry + 1, 3, otherId));
        assertEq(list.length, 128, "64 bytes a lock");
        (bytes32 root, uint256 locked) = network.checkLocks(list);
        assertEq(root, keccak256(list), "keccak256 of the concatenation");
        assertEq(locked, 10 ether + 3, "the sum of the amounts");
        (root, locked) = network.checkLocks("");
        assertEq(root, bytes32(0), "the empty list has root 0");
        assertEq(locked, 0, "and nothing locked");
    }

    function test_checkLocks_encodingMatchesTheLibrary() public view {
        Locks.Lock memory lock = lockOf(expiry, type(uint128).max, secretId);
        assertEq(keccak256(Locks.encode(lock)), keccak256(encodeLock(lock)), "the library writes the specification");
    }

    function test_checkLocks_revertsOnAPartialLock() public {
        vm.expectRevert(abi.encodeWithSelector(Locks.LocksMalformed.selector, 65));
        network.checkLocks(bytes.concat(aliceLocks, hex"00"));
    }

    function test_checkLocks_revertsOnMoreThan32Locks() public {
        network.checkLocks(manyLocks(32, expiry, 1, 7));
        bytes memory tooMany = manyLocks(33, expiry, 1, 7);
        vm.expectRevert(abi.encodeWithSelector(Locks.TooManyLocks.selector, 33, 32));
        network.checkLocks(tooMany);
    }

    function test_checkLocks_revertsOnAZeroAmount() public {
        bytes memory list = listOf(lockOf(expiry, 1, secretId), lockOf(expiry, 0, otherId));
        vm.expectRevert(abi.encodeWithSelector(Locks.LockAmountZero.selector, 1));
        network.checkLocks(list);
    }

    function test_checkLocks_revertsOnNonzeroPadding() public {
        bytes memory list = aliceLocks;
        list[31] = 0x01; // the last padding byte
        vm.expectRevert(abi.encodeWithSelector(Locks.LockPaddingNotZero.selector, 0));
        network.checkLocks(list);
    }

    // ---------------------------------------------------------------------------------------
    // close
    // ---------------------------------------------------------------------------------------

    function test_close_storesBothRootsAndEmitsBothLists() public {
        bytes memory brandonLocks = listOf(lockOf(expiry, 4 ether, otherId));
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(BRANDON_PK, channelId, 2, 5 ether, brandonLocks);
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelLocksDeclared(channelId, brandonLocks, aliceLocks);
        closeWithLocks(alice, channelId, proof, sig, brandonLocks, 20 ether, aliceLocks);
        TokenNetwork.ChannelLocks memory held = network.channelLocks(channelId);
        assertEq(
            held.declaredLocks,
            keccak256(abi.encode(keccak256(brandonLocks), keccak256(aliceLocks))),
            "both roots in one commitment"
        );
        assertEq(held.declaredLocks, network.declaredLocksOf(brandonLocks, aliceLocks), "as the view computes it");
        assertEq(held.evidenceNonce, 0, "no evidence yet");
    }

    function test_close_revertsOnAListThatIsNotTheSignedOne() public {
        bytes memory signedList = listOf(lockOf(expiry, 4 ether, otherId));
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(BRANDON_PK, channelId, 2, 5 ether, signedList);
        bytes memory other = listOf(lockOf(expiry, 4 ether, secretId));
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, keccak256(signedList), keccak256(other))
        );
        closeWithLocks(alice, channelId, proof, sig, other, 0, "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, keccak256(signedList), 0));
        closeWithLocks(alice, channelId, proof, sig, "", 0, "");
        assertEq(uint256(info(channelId).state), uint256(TokenNetwork.ChannelState.Open), "still open");
    }

    function test_close_revertsOnASignedSumThatDiffersFromTheList() public {
        bytes memory list = listOf(lockOf(expiry, 4 ether, otherId));
        TokenNetwork.BalanceProof memory proof = lockedProof(channelId, 2, 5 ether, list);
        proof.lockedAmount = 3 ether;
        bytes memory sig = signProof(BRANDON_PK, proof);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LockedAmountMismatch.selector, 3 ether, 4 ether));
        closeWithLocks(alice, channelId, proof, sig, list, 0, "");
    }

    function test_close_revertsOnPartnerLocksWithoutAProof() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, 0, keccak256(aliceLocks)));
        closeWithLocks(alice, channelId, emptyProof(), "", aliceLocks, 0, "");
    }

    function test_close_revertsOnMalformedOwnLocks() public {
        bytes memory tooMany = manyLocks(33, expiry, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(Locks.TooManyLocks.selector, 33, 32));
        closeWithLocks(alice, channelId, emptyProof(), "", "", 0, tooMany);
        bytes memory zero = listOf(lockOf(expiry, 0, secretId));
        vm.expectRevert(abi.encodeWithSelector(Locks.LockAmountZero.selector, 0));
        closeWithLocks(alice, channelId, emptyProof(), "", "", 0, zero);
    }

    function test_close_withoutLocksStoresNoRoots() public {
        vm.recordLogs();
        closeWith(alice, channelId, emptyProof(), "", 1 ether);
        assertEq(vm.getRecordedLogs().length, 1, "ChannelClosed only");
        afterHold();
        network.settle(channelId);
    }

    // ---------------------------------------------------------------------------------------
    // The claim rule at settleWithLocks
    // ---------------------------------------------------------------------------------------

    function test_settleWithLocks_paysALockRegisteredBeforeExpiry() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.warp(expiry - 1);
        registry.registerSecret(SECRET);
        afterHold();
        (uint256 alice0, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, "", "");
        (uint256 alice1, uint256 brandon1) = balances();
        assertEq(brandon1 - brandon0, BRANDON_DEPOSIT + 30 ether, "the payment and the lock");
        assertEq(alice1 - alice0, ALICE_DEPOSIT - 30 ether, "the rest");
        assertEq(uint256(info(channelId).state), 0, "deleted");
        assertEq(network.channelLocks(channelId).declaredLocks, bytes32(0), "lists deleted");
    }

    function test_settleWithLocks_refundsALockNeverRegistered() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        afterHold();
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, "", "");
        assertEq(token.balanceOf(brandon) - brandon0, BRANDON_DEPOSIT + 20 ether, "the payment only");
    }

    function test_settleWithLocks_refundsALockRegisteredAtOrAfterExpiry() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.warp(expiry);
        registry.registerSecret(SECRET);
        afterHold();
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, "", "");
        assertEq(token.balanceOf(brandon) - brandon0, BRANDON_DEPOSIT + 20 ether, "t == expiry is too late");
    }

    function test_settleWithLocks_refundsALockRegisteredAfterSettleAt() public {
        // A lock that outlives the hold period: registering it after settleAt is too late,
        // so the outcome is fixed when the hold period ends.
        bytes memory late = listOf(lockOf(block.timestamp + 10 days, 10 ether, secretId));
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, late);
        afterHold();
        registry.registerSecret(SECRET);
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, late, "", "");
        assertEq(token.balanceOf(brandon) - brandon0, BRANDON_DEPOSIT + 20 ether, "t == settleAt is too late");
    }

    function test_settleWithLocks_paysThePartnerLocksToTheCloser() public {
        bytes memory brandonLocks = listOf(lockOf(expiry, 4 ether, otherId));
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(BRANDON_PK, channelId, 2, 5 ether, brandonLocks);
        closeWithLocks(alice, channelId, proof, sig, brandonLocks, 20 ether, aliceLocks);
        registry.registerSecret(OTHER_SECRET);
        afterHold();
        (uint256 alice0, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, "", brandonLocks);
        (uint256 alice1, uint256 brandon1) = balances();
        assertEq(alice1 - alice0, ALICE_DEPOSIT - 20 ether + 5 ether + 4 ether, "paid, received, unlocked");
        assertEq(brandon1 - brandon0, BRANDON_DEPOSIT + 20 ether - 9 ether, "the rest");
    }

    function test_settleWithLocks_paysASignatureLockOnItsAck() public {
        bytes32 messageHash = keccak256("session 7, checkpoint 2");
        bytes memory list = listOf(lockOf(expiry, 10 ether, registry.ackConditionId(carol, messageHash)));
        closeWithLocks(alice, channelId, emptyProof(), "", "", 0, list);
        registry.registerAck(carol, messageHash, signAck(CAROL_PK, messageHash));
        afterHold();
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, list, "", "");
        assertEq(token.balanceOf(brandon) - brandon0, BRANDON_DEPOSIT + 10 ether, "the acknowledged lock");
    }

    function test_settleWithLocks_neverRevertsOnAHugeDeclaration() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", type(uint256).max, aliceLocks);
        registry.registerSecret(SECRET);
        afterHold();
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, "", "");
        assertEq(token.balanceOf(brandon) - brandon0, ALICE_DEPOSIT + BRANDON_DEPOSIT, "saturated: all to Brandon");
    }

    function test_settleWithLocks_revertsOnListsThatAreNotTheStoredOnes() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        afterHold();
        bytes32 stored = network.declaredLocksOf("", aliceLocks);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DeclaredLocksMismatch.selector, stored, 0));
        network.settleWithLocks(channelId, "", "", "");
        bytes32 swapped = network.declaredLocksOf(aliceLocks, "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DeclaredLocksMismatch.selector, stored, swapped));
        network.settleWithLocks(channelId, "", "", aliceLocks);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, 0, keccak256(aliceLocks)));
        network.settleWithLocks(channelId, aliceLocks, aliceLocks, "");
    }

    function test_settleWithLocks_revertsBeforeSettleAt() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        uint256 settleAt = info(channelId).settleAt;
        vm.warp(settleAt - 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.HoldPeriodNotOver.selector, settleAt));
        network.settleWithLocks(channelId, aliceLocks, "", "");
    }

    function test_settleWithLocks_settlesAChannelWithoutLocks() public {
        closeWith(alice, channelId, emptyProof(), "", 20 ether);
        afterHold();
        (, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, "", "", "");
        assertEq(token.balanceOf(brandon) - brandon0, BRANDON_DEPOSIT + 20 ether, "as settle would");
    }

    function test_settle_revertsWhileLocksArePending() public {
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        afterHold();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksPending.selector, channelId));
        network.settle(channelId);
    }

    // ---------------------------------------------------------------------------------------
    // Evidence
    // ---------------------------------------------------------------------------------------

    function test_updateClaim_aDroppedLockThatIsClaimedPenalizesTheCloser() public {
        (TokenNetwork.BalanceProof memory signedByAlice, bytes memory sig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        // Alice declares her payment but drops the lock from her declaration.
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        TokenNetwork.Watch memory watch = watchOf(channelId, signedByAlice, watcher, 1 ether, block.timestamp);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        vm.expectEmit(address(network));
        emit TokenNetwork.EvidenceSubmitted(channelId, watcher, watcher, 3, 20 ether, aliceLocks, 1 ether);
        vm.prank(watcher);
        network.updateClaim(channelId, signedByAlice, sig, aliceLocks, watch, watchSig);
        assertFalse(info(channelId).penalized, "not yet: it depends on the lock");
        assertEq(network.channelLocks(channelId).evidenceNonce, 3, "held as evidence");

        registry.registerSecret(SECRET);
        afterHold();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksPending.selector, channelId));
        network.settle(channelId);
        (uint256 alice0, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, "", aliceLocks, "");
        (uint256 alice1, uint256 brandon1) = balances();
        assertEq(alice1, alice0, "Alice forfeits all");
        assertEq(brandon1 - brandon0, ALICE_DEPOSIT + BRANDON_DEPOSIT - 1 ether, "Brandon gets the channel");
        assertEq(token.balanceOf(watcher), 1 ether, "the watcher its reward");
    }

    function test_updateClaim_aDroppedLockThatExpiredCostsNothingAndPaysNoReward() public {
        (TokenNetwork.BalanceProof memory signedByAlice, bytes memory sig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        TokenNetwork.Watch memory watch = watchOf(channelId, signedByAlice, watcher, 1 ether, block.timestamp);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        vm.prank(watcher);
        network.updateClaim(channelId, signedByAlice, sig, aliceLocks, watch, watchSig);
        afterHold();
        (uint256 alice0, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, "", aliceLocks, "");
        (uint256 alice1, uint256 brandon1) = balances();
        assertEq(brandon1 - brandon0, BRANDON_DEPOSIT + 20 ether, "what Alice declared");
        assertEq(alice1 - alice0, ALICE_DEPOSIT - 20 ether, "Alice keeps the rest");
        assertEq(token.balanceOf(watcher), 0, "no reward for evidence that proved nothing more");
    }

    function test_updateClaim_evidenceMatchingAnHonestCloseChangesNothing() public {
        (TokenNetwork.BalanceProof memory signedByAlice, bytes memory sig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.prank(brandon);
        network.updateClaim(channelId, signedByAlice, sig, aliceLocks, emptyWatch(), "");
        registry.registerSecret(SECRET);
        afterHold();
        (uint256 alice0, uint256 brandon0) = balances();
        network.settleWithLocks(channelId, aliceLocks, aliceLocks, "");
        (uint256 alice1, uint256 brandon1) = balances();
        assertEq(brandon1 - brandon0, BRANDON_DEPOSIT + 30 ether, "the payment and the lock");
        assertEq(alice1 - alice0, ALICE_DEPOSIT - 30 ether, "an honest closer is not penalized");
    }

    function test_updateClaim_revertsOnEvidenceNotNewer() public {
        (TokenNetwork.BalanceProof memory newer, bytes memory newerSig) =
            signedLockedProof(ALICE_PK, channelId, 4, 20 ether, aliceLocks);
        (TokenNetwork.BalanceProof memory older, bytes memory olderSig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        vm.startPrank(brandon);
        network.updateClaim(channelId, newer, newerSig, aliceLocks, emptyWatch(), "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.EvidenceNotNewer.selector, 3, 4));
        network.updateClaim(channelId, older, olderSig, aliceLocks, emptyWatch(), "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.EvidenceNotNewer.selector, 4, 4));
        network.updateClaim(channelId, newer, newerSig, aliceLocks, emptyWatch(), "");
        vm.stopPrank();
    }

    function test_updateClaim_newerEvidenceReplacesTheOlderAndItsReward() public {
        bytes memory first = manyLocks(1, expiry, 5 ether, 1);
        bytes memory both = manyLocks(2, expiry, 5 ether, 1);
        (TokenNetwork.BalanceProof memory older, bytes memory olderSig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, first);
        (TokenNetwork.BalanceProof memory newer, bytes memory newerSig) =
            signedLockedProof(ALICE_PK, channelId, 4, 20 ether, both);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        TokenNetwork.Watch memory watch = watchOf(channelId, older, watcher, 1 ether, block.timestamp);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        vm.prank(watcher);
        network.updateClaim(channelId, older, olderSig, first, watch, watchSig);
        vm.prank(brandon);
        network.updateClaim(channelId, newer, newerSig, both, emptyWatch(), "");
        TokenNetwork.ChannelLocks memory held = network.channelLocks(channelId);
        assertEq(held.evidenceNonce, 4, "the newer proof");
        assertEq(held.evidenceLocksRoot, keccak256(both), "with its locks");
        assertEq(info(channelId).reward, 0, "the reward belongs to the evidence held");

        registry.registerSecret(secretOf(1, 1));
        afterHold();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, keccak256(both), keccak256(first)));
        network.settleWithLocks(channelId, "", first, "");
        network.settleWithLocks(channelId, "", both, "");
        assertEq(token.balanceOf(brandon), ALICE_DEPOSIT + BRANDON_DEPOSIT, "penalized on the second lock");
        assertEq(token.balanceOf(watcher), 0, "the replaced Watch earns nothing");
    }

    function test_updateClaim_aLieAfterEvidencePenalizesAtOnceAndClearsTheLocks() public {
        (TokenNetwork.BalanceProof memory locked, bytes memory lockedSig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        (TokenNetwork.BalanceProof memory lie, bytes memory lieSig) = signedProof(ALICE_PK, channelId, 4, 30 ether);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.startPrank(brandon);
        network.updateClaim(channelId, locked, lockedSig, aliceLocks, emptyWatch(), "");
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");
        vm.stopPrank();
        assertTrue(info(channelId).penalized, "penalized");
        TokenNetwork.ChannelLocks memory held = network.channelLocks(channelId);
        assertEq(held.declaredLocks, bytes32(0), "a penalty ignores locks");
        assertEq(held.evidenceNonce, 0, "and evidence");
        afterHold();
        network.settle(channelId);
        assertEq(token.balanceOf(brandon), ALICE_DEPOSIT + BRANDON_DEPOSIT, "all to Brandon");
    }

    function test_settleWithLocks_ignoresTheListsOfAPenalizedChannel() public {
        (TokenNetwork.BalanceProof memory lie, bytes memory lieSig) = signedProof(ALICE_PK, channelId, 4, 30 ether);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.prank(brandon);
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");
        afterHold();
        network.settleWithLocks(channelId, "anything", "", "");
        assertEq(token.balanceOf(brandon), ALICE_DEPOSIT + BRANDON_DEPOSIT, "all to Brandon");
    }

    function test_updateClaim_revertsOnAProofWithoutLocksNotAboveTheClaim() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 3, 20 ether);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, aliceLocks);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ClaimNotExceeded.selector, 20 ether, 20 ether));
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
    }

    function test_updateClaim_revertsOnEvidenceWhoseListIsNotTheSignedOne() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, keccak256(aliceLocks), 0));
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
    }

    function test_updateClaim_theCloserCannotSubmitEvidence() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(ALICE_PK, channelId, 3, 20 ether, aliceLocks);
        closeWithLocks(alice, channelId, emptyProof(), "", "", 20 ether, "");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.CloserCannotUpdate.selector, alice));
        vm.prank(alice);
        network.updateClaim(channelId, proof, sig, aliceLocks, emptyWatch(), "");
    }
}

/// Fuzz tests of the encoding and of the settle arithmetic with locks.
contract TokenNetworkLocksFuzzTest is LockFixture {
    function testFuzz_checkLocks_acceptsEveryCanonicalList(uint256 count, uint256 seed) public view {
        count = bound(count, 0, Locks.MAX_LOCKS);
        bytes memory list;
        uint256 sum;
        for (uint256 i; i < count; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 amount = bound(r, 1, type(uint128).max);
            list = bytes.concat(list, encodeLock(lockOf(uint40(r >> 128), amount, keccak256(abi.encode(r)))));
            sum += amount;
        }
        (bytes32 root, uint256 locked) = network.checkLocks(list);
        assertEq(root, count == 0 ? bytes32(0) : keccak256(list), "root");
        assertEq(locked, sum, "sum");
    }

    function testFuzz_checkLocks_refusesEveryNonzeroPaddingByte(uint256 byteIndex, uint8 value) public {
        byteIndex = bound(byteIndex, 21, 31);
        value = uint8(bound(value, 1, 255));
        bytes memory list = encodeLock(lockOf(1, 1, bytes32(uint256(1))));
        list[byteIndex] = bytes1(value);
        vm.expectRevert(abi.encodeWithSelector(Locks.LockPaddingNotZero.selector, 0));
        network.checkLocks(list);
    }

    /// Any deposits, declarations, lock amounts and registration times: settleWithLocks pays
    /// out exactly TOTAL and follows the claim rule.
    function testFuzz_settleWithLocks_paysByTheClaimRule(
        uint256 deposit1,
        uint256 deposit2,
        uint256 claim,
        uint256 received,
        uint256 amount1,
        uint256 amount2,
        uint256 registerAfter
    ) public {
        claim = bound(claim, 0, 1e36);
        received = bound(received, 0, 1e36);
        (uint256 total, uint256 t, uint256 closedAt) =
            settleOne(deposit1, deposit2, claim, received, amount1, amount2, registerAfter);
        amount1 = bound(amount1, 1, type(uint128).max);
        amount2 = bound(amount2, 1, type(uint128).max);
        deposit1 = bound(deposit1, 0, 1e27);
        uint256 aliceOwes = t < closedAt + 12 hours ? claim + amount1 : claim;
        uint256 aliceIsOwed = t < closedAt + TIMEOUT ? received + amount2 : received;
        uint256 expected;
        if (deposit1 + aliceIsOwed > aliceOwes) expected = deposit1 + aliceIsOwed - aliceOwes;
        if (expected > total) expected = total;
        assertEq(token.balanceOf(alice), expected, "Alice's share by the claim rule");
    }

    /// Declarations and signed amounts up to 2^256 - 1: settleWithLocks still pays exactly
    /// TOTAL and does not revert.
    function testFuzz_settleWithLocks_neverRevertsOnAnyAmounts(
        uint256 deposit1,
        uint256 deposit2,
        uint256 claim,
        uint256 received,
        uint256 amount1,
        uint256 amount2,
        uint256 registerAfter
    ) public {
        settleOne(deposit1, deposit2, claim, received, amount1, amount2, registerAfter);
    }

    /// Alice closes with Brandon's proof of `received` and a lock of his, declaring `claim`
    /// and a lock of hers; both secrets are registered `registerAfter` seconds after the
    /// close; then anyone settles.
    function settleOne(
        uint256 deposit1,
        uint256 deposit2,
        uint256 claim,
        uint256 received,
        uint256 amount1,
        uint256 amount2,
        uint256 registerAfter
    ) internal returns (uint256 total, uint256 registeredAt, uint256 closedAt) {
        deposit1 = bound(deposit1, 0, 1e27);
        deposit2 = bound(deposit2, 0, 1e27);
        amount1 = bound(amount1, 1, type(uint128).max);
        amount2 = bound(amount2, 1, type(uint128).max);
        registerAfter = bound(registerAfter, 0, 2 days);
        bytes32 channelId = openAndFund(deposit1, deposit2);
        closedAt = block.timestamp;
        bytes32 secret1 = keccak256(abi.encode("one", amount1));
        bytes32 secret2 = keccak256(abi.encode("two", amount2));
        // Alice's lock to Brandon expires in 12 hours; Brandon's to Alice outlives the hold.
        bytes memory own = listOf(lockOf(closedAt + 12 hours, amount1, hashlock(secret1)));
        bytes memory partner = listOf(lockOf(closedAt + 3 days, amount2, hashlock(secret2)));
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedLockedProof(BRANDON_PK, channelId, 1, received, partner);
        closeWithLocks(alice, channelId, proof, sig, partner, claim, own);
        registeredAt = closedAt + registerAfter;
        vm.warp(registeredAt);
        registry.registerSecret(secret1);
        registry.registerSecret(secret2);
        total = network.channelTotal(channelId);
        vm.warp(info(channelId).settleAt);
        uint256 before = token.balanceOf(alice) + token.balanceOf(brandon);
        network.settleWithLocks(channelId, own, "", partner);
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon) - before, total, "exactly TOTAL");
        assertEq(token.balanceOf(address(network)), 0, "nothing left behind");
    }

}
