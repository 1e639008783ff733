// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {TokenNetwork} from "../../src/TokenNetwork.sol";
import {ChannelHandler} from "./handlers/ChannelHandler.sol";
import {Console} from "../utils/Console.sol";

/// @notice DESIGN.md section 3.3's invariants over random sequences of channel operations.
contract TokenNetworkInvariantTest is Fixture {
    uint256 internal constant DAVE_PK = 0xDA7E;

    ChannelHandler internal handler;
    TokenNetwork internal network2;

    function setUp() public override {
        super.setUp();
        network2 = new TokenNetwork(token, address(agent), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.label(address(network2), "network2");
        handler = new ChannelHandler(
            token, network, network2, [ALICE_PK, BRANDON_PK, CAROL_PK, DAVE_PK], WATCHER_PK, MIN_TIMEOUT
        );
        vm.label(address(handler), "handler");
        fund(address(handler), SUPPLY / 2);
        // Every run starts with every pair open (half funded by the opener alone), so that
        // the first calls already pay, close and dispute instead of looking for a channel.
        for (uint256 pair; pair < handler.PAIRS(); ++pair) {
            handler.open(pair, pair, pair * 1 hours, (pair + 1) * 1000 ether, (pair + 2) * 700 ether);
        }

        // Weights: payments (what disputes are about), the two ways a channel ends (so that
        // pairs reopen at new epochs), and replays get more calls.
        bytes4[] memory selectors = new bytes4[](17);
        selectors[0] = ChannelHandler.open.selector;
        selectors[1] = ChannelHandler.open.selector;
        selectors[2] = ChannelHandler.deposit.selector;
        selectors[3] = ChannelHandler.pay.selector;
        selectors[4] = ChannelHandler.pay.selector;
        selectors[5] = ChannelHandler.pay.selector;
        selectors[6] = ChannelHandler.withdraw.selector;
        selectors[7] = ChannelHandler.withdraw.selector;
        selectors[8] = ChannelHandler.close.selector;
        selectors[9] = ChannelHandler.updateClaim.selector;
        selectors[10] = ChannelHandler.cooperativeSettle.selector;
        selectors[11] = ChannelHandler.settle.selector;
        selectors[12] = ChannelHandler.settle.selector;
        selectors[13] = ChannelHandler.warp.selector;
        selectors[14] = ChannelHandler.donate.selector;
        selectors[15] = ChannelHandler.replay.selector;
        selectors[16] = ChannelHandler.replay.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice The network always holds at least what its unsettled channels hold (exactly that
    /// plus what was sent to it directly), on both deployments.
    function invariant_networkHoldsEveryUnsettledTotal() public view {
        uint256 sum = _sumOfTotals(network);
        assertEq(sum, handler.ghostNetworkTotal(), "channel totals match the handler's accounting");
        assertGe(token.balanceOf(address(network)), sum, "network holds every unsettled TOTAL");
        assertEq(token.balanceOf(address(network)), sum + handler.ghostDonated(), "and not a token more or less");

        uint256 sum2 = _sumOfTotals(network2);
        assertGe(token.balanceOf(address(network2)), sum2, "network2 holds every unsettled TOTAL");
        assertEq(token.balanceOf(address(network2)), sum2 + handler.ghostDonated2(), "network2 exact balance");
    }

    /// @notice Every settled channel paid its participants and watcher exactly its TOTAL.
    function invariant_settledPayoutsSumToTotal() public view {
        uint256 count = handler.payoutCount();
        for (uint256 i; i < count; ++i) {
            ChannelHandler.Payout memory payout = handler.payoutAt(i);
            assertEq(payout.received, payout.total, "payouts and reward sum to the channel's TOTAL");
            assertEq(payout.networkPaid, payout.total, "the network paid out exactly the TOTAL");
        }
        assertEq(handler.ghostTransferMismatches(), 0, "withdrawals paid exactly what was signed");
    }

    /// @notice An honest participant that answered a stale close (itself or through its
    /// watcher) ends with at least its off-chain balance, minus the reward it signed.
    function invariant_honestParticipantGetsItsBalance() public view {
        uint256 count = handler.honestCheckCount();
        for (uint256 i; i < count; ++i) {
            ChannelHandler.HonestCheck memory check = handler.honestCheckAt(i);
            assertGe(check.received + check.signedReward, check.owed, "honest participant paid its balance");
        }
    }

    /// @notice No signature was accepted twice, nor on another channel, epoch, chain or
    /// deployment.
    function invariant_noSignatureAcceptedTwice() public view {
        assertEq(handler.ghostReplayAccepted(), 0, "a replayed signature was accepted");
    }

    /// @notice Every operation the handler built to be valid went through; settle in
    /// particular never reverts once the hold period is over.
    function invariant_validOperationsNeverRevert() public view {
        assertEq(handler.ghostSettleReverts(), 0, "settle reverted after the hold period");
        assertEq(handler.ghostUnexpectedReverts(), 0, handler.lastUnexpectedAction());
    }

    /// @dev Printed with `-vv` (for the last run): how much real work a run did. forge's table
    /// counts every call; its "Reverts" column is the calls that found nothing to act on.
    function afterInvariant() public view {
        Console.log("opens", handler.opens());
        Console.log("deposits", handler.deposits());
        Console.log("payments", handler.payments());
        Console.log("withdrawals", handler.withdrawals());
        Console.log("colluding withdrawals", handler.colludingWithdrawals());
        Console.log("closes", handler.closes());
        Console.log("stale closes", handler.staleCloses());
        Console.log("updateClaims", handler.updates());
        Console.log("cooperative settles", handler.cooperativeSettles());
        Console.log("settles", handler.settles());
        Console.log("penalized settles", handler.penalizedSettles());
        Console.log("unanswered stale settles", handler.unguardedStaleSettles());
        Console.log("honest checks", handler.honestCheckCount());
        Console.log("donations", handler.donations());
        Console.log("replay attempts", handler.ghostReplayAttempts());
        Console.log("replays same chain", handler.replaysByMode(0));
        Console.log("replays network2", handler.replaysByMode(1));
        Console.log("replays other chain", handler.replaysByMode(2));
    }

    function _sumOfTotals(TokenNetwork net) private view returns (uint256 sum) {
        for (uint256 pair; pair < handler.PAIRS(); ++pair) {
            (address p1, address p2) = handler.pairParticipants(pair);
            (bytes32 id,) = net.currentChannel(p1, p2);
            sum += net.channelTotal(id);
        }
    }
}
