// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {SettlementMath} from "../src/libraries/SettlementMath.sol";

/// @notice Exposes the internal library function to the fuzzer.
contract SettlementMathHarness {
    function split(uint256 deposit1, uint256 withdrawn1, uint256 transferred12, uint256 transferred21, uint256 total)
        external
        pure
        returns (uint256 payout1, uint256 payout2)
    {
        return SettlementMath.split(deposit1, withdrawn1, transferred12, transferred21, total);
    }
}

/// @notice The settlement rule written the obvious way, independently of SettlementMath:
/// `clamp(D1 - W1 + T21 - T12, 0, TOTAL)` over 257-bit signed values, so no input can overflow.
abstract contract SettlementReference {
    /// @dev A 257-bit unsigned number: `carry * 2^256 + low`.
    struct Wide {
        uint256 carry;
        uint256 low;
    }

    function referenceSplit(uint256 d1, uint256 w1, uint256 t12, uint256 t21, uint256 total)
        internal
        pure
        returns (uint256 p1, uint256 p2)
    {
        Wide memory plus = _add(d1, t21);
        Wide memory minus = _add(w1, t12);
        if (!_greater(plus, minus)) {
            p1 = 0;
        } else {
            // plus - minus is in (0, 2^257); it exceeds TOTAL (< 2^256) whenever its high part
            // is set after the borrow.
            uint256 low;
            bool above2to256;
            unchecked {
                low = plus.low - minus.low;
            }
            uint256 borrow = plus.low < minus.low ? 1 : 0;
            above2to256 = plus.carry - minus.carry - borrow == 1;
            p1 = above2to256 || low >= total ? total : low;
        }
        p2 = total - p1;
    }

    function _add(uint256 a, uint256 b) private pure returns (Wide memory sum) {
        unchecked {
            sum.low = a + b;
        }
        sum.carry = sum.low < a ? 1 : 0;
    }

    function _greater(Wide memory a, Wide memory b) private pure returns (bool) {
        return a.carry != b.carry ? a.carry > b.carry : a.low > b.low;
    }
}

/// @notice Deposits, withdrawals and settle arithmetic under arbitrary inputs, checked against
/// `SettlementReference`.
contract TokenNetworkFuzzTest is Fixture, SettlementReference {
    /// @dev Deposits stay well inside the token supply so that both sides can always be funded.
    uint256 internal constant MAX_DEPOSIT = 1_000_000_000 ether;

    SettlementMathHarness internal harness;

    function setUp() public override {
        super.setUp();
        harness = new SettlementMathHarness();
    }

    function testFuzz_split_matchesReference(uint256 d1, uint256 d2, uint256 w1, uint256 w2, uint256 t12, uint256 t21)
        public
        view
    {
        // The contract's domain: both deposits below 2^128 together, withdrawals within them;
        // transferred amounts are unconstrained (they come from signatures and declarations).
        d1 = bound(d1, 0, type(uint128).max);
        d2 = bound(d2, 0, type(uint128).max - d1);
        w1 = bound(w1, 0, d1 + d2);
        w2 = bound(w2, 0, d1 + d2 - w1);
        uint256 total = d1 + d2 - w1 - w2;

        (uint256 p1, uint256 p2) = harness.split(d1, w1, t12, t21, total);
        (uint256 r1, uint256 r2) = referenceSplit(d1, w1, t12, t21, total);
        assertEq(p1, r1, "payout1 matches the reference");
        assertEq(p2, r2, "payout2 matches the reference");
        assertEq(p1 + p2, total, "payouts sum to the total");
    }

    function testFuzz_split_extremeTransfersClampToTotal(uint256 d1, uint256 d2, uint256 t) public view {
        d1 = bound(d1, 0, type(uint128).max);
        d2 = bound(d2, 0, type(uint128).max - d1);
        t = bound(t, d1 + d2, type(uint256).max);
        uint256 total = d1 + d2;

        // Paying at least everything the channel holds moves it all to the other side.
        (uint256 p1, uint256 p2) = harness.split(d1, 0, t, 0, total);
        assertEq(p1, 0, "participant 1 paid everything");
        assertEq(p2, total, "participant 2 holds everything");
        (p1, p2) = harness.split(d1, 0, 0, t, total);
        assertEq(p1, total, "participant 1 received everything");
        assertEq(p2, 0, "participant 2 paid everything");
        // Equal huge amounts in both directions cancel out.
        (p1, p2) = harness.split(d1, 0, t, t, total);
        assertEq(p1, d1, "participant 1 keeps its deposit");
        assertEq(p2, d2, "participant 2 keeps its deposit");
    }

    function testFuzz_deposit_risingTotalsMatchBalances(uint256[6] calldata steps, uint8 sides) public {
        bytes32 channelId = openChannel(alice, brandon);
        uint256 aliceTotal;
        uint256 brandonTotal;
        for (uint256 i; i < steps.length; ++i) {
            bool forAlice = (sides >> i) & 1 == 0;
            address participant = forAlice ? alice : brandon;
            uint256 current = forAlice ? aliceTotal : brandonTotal;
            uint256 totalDeposit = current + bound(steps[i], 1, MAX_DEPOSIT / steps.length);
            depositFor(channelId, participant, totalDeposit);
            if (forAlice) aliceTotal = totalDeposit;
            else brandonTotal = totalDeposit;

            (uint256 recorded,) = network.participantInfo(channelId, participant);
            assertEq(recorded, totalDeposit, "total deposit recorded");
            assertEq(network.channelTotal(channelId), aliceTotal + brandonTotal, "channel total");
            assertEq(token.balanceOf(address(network)), aliceTotal + brandonTotal, "network holds every deposit");
            assertEq(token.balanceOf(participant), 0, "exactly the difference was pulled");
        }

        // A replayed total moves nothing.
        fund(alice, 1);
        vm.startPrank(alice);
        token.approve(address(network), 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotIncreased.selector, aliceTotal, aliceTotal));
        network.deposit(channelId, alice, aliceTotal);
        vm.stopPrank();
        assertEq(token.balanceOf(address(network)), aliceTotal + brandonTotal, "replay moved nothing");
    }

    function testFuzz_withdraw_acceptedExactlyWithinCap(uint256 d1, uint256 d2, uint256 w1, uint256 w2) public {
        d1 = bound(d1, 0, MAX_DEPOSIT);
        d2 = bound(d2, 0, MAX_DEPOSIT);
        uint256 deposits = d1 + d2;
        // Up to twice the deposits, so that about half the inputs are above the cap.
        w1 = bound(w1, 1, 2 * deposits + 1);
        w2 = bound(w2, 1, 2 * deposits + 1);
        bytes32 channelId = openAndFund(d1, d2);

        uint256 paid1 = _tryWithdraw(channelId, alice, ALICE_PK, BRANDON_PK, w1, 0, deposits) ? w1 : 0;
        uint256 paid2 = _tryWithdraw(channelId, brandon, BRANDON_PK, ALICE_PK, w2, paid1, deposits) ? w2 : 0;

        assertEq(token.balanceOf(alice), paid1, "alice received exactly her accepted withdrawal");
        assertEq(token.balanceOf(brandon), paid2, "brandon received exactly his accepted withdrawal");
        assertLe(paid1 + paid2, deposits, "the network never pays more than it holds");
        assertEq(token.balanceOf(address(network)), deposits - paid1 - paid2, "network balance");
        assertEq(network.channelTotal(channelId), deposits - paid1 - paid2, "channel total");
    }

    /// @dev Withdraws `totalWithdraw` for `participant` with both signatures; expects success
    /// exactly when it fits under the cap `totalWithdraw + partnerWithdrawn <= deposits`.
    function _tryWithdraw(
        bytes32 channelId,
        address participant,
        uint256 participantPk,
        uint256 partnerPk,
        uint256 totalWithdraw,
        uint256 partnerWithdrawn,
        uint256 deposits
    ) private returns (bool accepted) {
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig1 = signWithdraw(participantPk, channelId, participant, totalWithdraw, deadline);
        bytes memory sig2 = signWithdraw(partnerPk, channelId, participant, totalWithdraw, deadline);
        accepted = totalWithdraw <= deposits - partnerWithdrawn;
        if (!accepted) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    TokenNetwork.WithdrawExceedsDeposits.selector, totalWithdraw, partnerWithdrawn, deposits
                )
            );
        }
        network.withdraw(channelId, participant, totalWithdraw, deadline, sig1, sig2);
        (, uint256 withdrawn) = network.participantInfo(channelId, participant);
        assertEq(withdrawn, accepted ? totalWithdraw : 0, "withdrawal recorded only when accepted");
    }

    // -------------------------------------------------------------------------------------------
    // Close and settle with arbitrary deposits, withdrawals and transferred amounts
    // -------------------------------------------------------------------------------------------

    struct Scenario {
        uint256 d1;
        uint256 d2;
        uint256 w1;
        uint256 w2;
        uint256 t12;
        uint256 t21;
        bool closedBy1;
        bool withProof;
    }

    function testFuzz_settle_neverRevertsAndMatchesReference(Scenario memory s, uint256 settleDelay, bool small)
        public
    {
        s.d1 = bound(s.d1, 0, MAX_DEPOSIT);
        s.d2 = bound(s.d2, 0, MAX_DEPOSIT);
        s.w1 = bound(s.w1, 0, s.d1 + s.d2);
        s.w2 = bound(s.w2, 0, s.d1 + s.d2 - s.w1);
        // Half the runs keep the transfers near the deposits, where the split is not clamped.
        if (small) {
            s.t12 = bound(s.t12, 0, 2 * (s.d1 + s.d2) + 1);
            s.t21 = bound(s.t21, 0, 2 * (s.d1 + s.d2) + 1);
        }
        // Transferred amounts are left whole: up to 2^256 - 1, far above any deposit. The
        // partner's proof must carry a nonce and a signature, the claim is a bare number.
        if (!s.withProof) {
            if (s.closedBy1) s.t21 = 0;
            else s.t12 = 0;
        }
        (address p1, uint256 pk1, address p2, uint256 pk2) = _sorted();
        bytes32 channelId = _openFundWithdraw(s, p1, pk1, p2, pk2);
        uint256 total = s.d1 + s.d2 - s.w1 - s.w2;
        assertEq(network.channelTotal(channelId), total, "channel total");

        (address closer, uint256 partnerPk, uint256 claim, uint256 received) =
            s.closedBy1 ? (p1, pk2, s.t12, s.t21) : (p2, pk1, s.t21, s.t12);
        TokenNetwork.BalanceProof memory proof;
        bytes memory sig;
        if (s.withProof) (proof, sig) = signedProof(partnerPk, channelId, 1, received);
        closeWith(closer, channelId, proof, sig, claim);

        uint256 settleAt = info(channelId).settleAt;
        vm.warp(settleAt + bound(settleDelay, 0, 365 days));
        uint256 before1 = token.balanceOf(p1);
        uint256 before2 = token.balanceOf(p2);
        uint256 networkBefore = token.balanceOf(address(network));
        network.settle(channelId);

        (uint256 r1, uint256 r2) = referenceSplit(s.d1, s.w1, s.t12, s.t21, total);
        uint256 paid1 = token.balanceOf(p1) - before1;
        uint256 paid2 = token.balanceOf(p2) - before2;
        assertEq(paid1, r1, "participant 1 paid the reference amount");
        assertEq(paid2, r2, "participant 2 paid the reference amount");
        assertEq(paid1 + paid2, total, "payouts sum to the channel total");
        assertEq(networkBefore - token.balanceOf(address(network)), total, "network paid out exactly the total");
        assertEq(uint8(info(channelId).state), uint8(TokenNetwork.ChannelState.None), "storage deleted");
    }

    function testFuzz_settle_penalizedPaysTotalToNonCloserAndWatcher(
        uint256 d1,
        uint256 d2,
        uint256 claim,
        uint256 proven,
        uint256 reward,
        bool closedByAlice,
        bool rewardBelowTotal
    ) public {
        d1 = bound(d1, 0, MAX_DEPOSIT);
        d2 = bound(d2, 0, MAX_DEPOSIT);
        // An unbounded reward is mostly above the total (capped); half the runs pay it in full.
        if (rewardBelowTotal) reward = bound(reward, 0, d1 + d2);
        claim = bound(claim, 0, type(uint256).max - 1);
        proven = bound(proven, claim + 1, type(uint256).max);
        bytes32 channelId = openAndFund(d1, d2);
        uint256 total = d1 + d2;

        (address closer, uint256 closerPk, address nonCloser, uint256 nonCloserPk) =
            closedByAlice ? (alice, ALICE_PK, brandon, BRANDON_PK) : (brandon, BRANDON_PK, alice, ALICE_PK);
        closeWith(closer, channelId, emptyProof(), "", claim);
        (TokenNetwork.BalanceProof memory proof, bytes memory proofSig) = signedProof(closerPk, channelId, 1, proven);
        TokenNetwork.Watch memory watch = watchOf(channelId, proof, watcher, reward, block.timestamp);
        bytes memory watchSig = signWatch(nonCloserPk, watch);
        vm.prank(watcher);
        network.updateClaim(channelId, proof, proofSig, "", watch, watchSig);

        vm.warp(info(channelId).settleAt);
        network.settle(channelId);

        uint256 paidReward = reward < total ? reward : total;
        assertEq(token.balanceOf(closer), 0, "the lying closer gets nothing");
        assertEq(token.balanceOf(watcher), paidReward, "watcher reward capped by the total");
        assertEq(token.balanceOf(nonCloser), total - paidReward, "non-closer gets the rest");
        assertEq(token.balanceOf(address(network)), 0, "network paid out exactly the total");
    }

    /// @dev The smallest story behind the reference mismatch: a participant who withdraws
    /// payments it received (W > D) must still get its off-chain balance at settle.
    function test_settle_paysReceiverWhoWithdrewMoreThanItDeposited() public {
        (address p1, uint256 pk1, address p2, uint256 pk2) = _sorted();
        Scenario memory s;
        s.d2 = 10 ether;
        s.w1 = 5 ether;
        bytes32 channelId = _openFundWithdraw(s, p1, pk1, p2, pk2);
        // p2 paid p1 8; p1 withdrew 5 of it: p1 is owed 3 of the 5 left, p2 the other 2.
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(pk2, channelId, 1, 8 ether);
        closeWith(p1, channelId, proof, sig, 0);
        vm.warp(info(channelId).settleAt);
        network.settle(channelId);

        assertEq(token.balanceOf(p1), 3 ether, "p1: 0 deposited - 5 withdrawn + 8 received");
        assertEq(token.balanceOf(p2), 2 ether, "p2: 10 deposited - 8 paid");
    }

    function _sorted() private view returns (address p1, uint256 pk1, address p2, uint256 pk2) {
        (p1, pk1, p2, pk2) =
            alice < brandon ? (alice, ALICE_PK, brandon, BRANDON_PK) : (brandon, BRANDON_PK, alice, ALICE_PK);
    }

    function _openFundWithdraw(Scenario memory s, address p1, uint256 pk1, address p2, uint256 pk2)
        private
        returns (bytes32 channelId)
    {
        channelId = openChannel(p1, p2);
        if (s.d1 != 0) depositFor(channelId, p1, s.d1);
        if (s.d2 != 0) depositFor(channelId, p2, s.d2);
        uint256 deadline = block.timestamp + 1 hours;
        if (s.w1 != 0) {
            network.withdraw(
                channelId,
                p1,
                s.w1,
                deadline,
                signWithdraw(pk1, channelId, p1, s.w1, deadline),
                signWithdraw(pk2, channelId, p1, s.w1, deadline)
            );
        }
        if (s.w2 != 0) {
            network.withdraw(
                channelId,
                p2,
                s.w2,
                deadline,
                signWithdraw(pk2, channelId, p2, s.w2, deadline),
                signWithdraw(pk1, channelId, p2, s.w2, deadline)
            );
        }
        // Withdrawals went to the participants: start payouts from zero.
        vm.prank(p1);
        token.transfer(holder, s.w1);
        vm.prank(p2);
        token.transfer(holder, s.w2);
    }
}
