// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";

/// @notice The whitepaper's story, end to end: Alice and Brandon open a channel, pay each other
/// off chain, and the Hold Period either confiscates a lying closer's deposit (through Brandon's
/// watcher) or pays an offline Brandon correctly from Alice's honest close alone.
contract WhitepaperStoryTest is Fixture {
    uint256 internal constant ALICE_DEPOSIT = 100 ether;
    uint256 internal constant BRANDON_DEPOSIT = 50 ether;
    uint256 internal constant REWARD = 2 ether;
    /// @dev What Alice has paid Brandon in total after each of her four payments.
    uint256[4] internal alicePaid = [uint256(10 ether), 25 ether, 32 ether, 40 ether];
    uint256 internal constant BRANDON_PAID = 5 ether;

    bytes32 internal channelId;
    TokenNetwork.BalanceProof[4] internal aliceProofs;
    bytes[4] internal aliceSigs;
    TokenNetwork.BalanceProof internal brandonProof;
    bytes internal brandonSig;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(ALICE_DEPOSIT, BRANDON_DEPOSIT);
        // Both deposited everything they had: every later balance is a payout.
        assertEq(token.balanceOf(alice), 0, "alice holds nothing after depositing");
        assertEq(token.balanceOf(brandon), 0, "brandon holds nothing after depositing");
        assertEq(token.balanceOf(address(network)), ALICE_DEPOSIT + BRANDON_DEPOSIT, "network holds both deposits");

        // Off chain: Alice pays four times (nonces 1..4, growing totals), Brandon pays once.
        for (uint256 i; i < 4; ++i) {
            (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
                signedProof(ALICE_PK, channelId, i + 1, alicePaid[i]);
            aliceProofs[i] = proof;
            aliceSigs[i] = sig;
        }
        (brandonProof, brandonSig) = signedProof(BRANDON_PK, channelId, 1, BRANDON_PAID);
    }

    function test_staleClose_watcherConfiscatesAliceDeposit() public {
        // Before going offline, Brandon hands the watcher Alice's latest proof and a Watch.
        TokenNetwork.Watch memory watch = watchOf(channelId, aliceProofs[3], watcher, REWARD, block.timestamp + 7 days);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);

        // Alice closes declaring she only paid what her second proof says.
        uint256 staleClaim = alicePaid[1];
        closeWith(alice, channelId, brandonProof, brandonSig, staleClaim);
        TokenNetwork.ChannelInfo memory closed = info(channelId);
        assertEq(uint8(closed.state), uint8(TokenNetwork.ChannelState.Closed), "closed");
        assertEq(closed.closer, alice, "alice is the closer");
        assertEq(closed.claimTransferred, staleClaim, "stale claim stored");
        assertEq(closed.closerReceived, BRANDON_PAID, "brandon's payment stored");
        assertEq(closed.settleAt, block.timestamp + TIMEOUT, "hold period starts now");
        assertFalse(closed.penalized, "not penalized yet");

        // During the hold period the watcher proves Alice paid more than she declared.
        vm.warp(block.timestamp + TIMEOUT / 2);
        vm.prank(watcher);
        network.updateClaim(channelId, aliceProofs[3], aliceSigs[3], "", watch, watchSig);
        TokenNetwork.ChannelInfo memory disputed = info(channelId);
        assertTrue(disputed.penalized, "alice penalized");
        assertEq(disputed.watcher, watcher, "watcher recorded");
        assertEq(disputed.reward, REWARD, "reward recorded");

        // Nobody is paid before the hold period is over.
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.HoldPeriodNotOver.selector, closed.settleAt));
        network.settle(channelId);

        vm.warp(closed.settleAt);
        vm.prank(carol);
        network.settle(channelId);

        assertEq(token.balanceOf(alice), 0, "alice loses her whole deposit");
        assertEq(token.balanceOf(brandon), ALICE_DEPOSIT + BRANDON_DEPOSIT - REWARD, "brandon gets both deposits");
        assertEq(token.balanceOf(watcher), REWARD, "watcher earns its reward");
        assertEq(token.balanceOf(carol), 0, "the settler earns nothing");
        assertEq(token.balanceOf(address(network)), 0, "the channel paid out exactly what it held");
        assertEq(uint8(info(channelId).state), uint8(TokenNetwork.ChannelState.None), "storage deleted");
    }

    function test_staleClose_olderProofAboveClaimAlsoPenalizes() public {
        // Any Alice-signed proof above her claim proves the lie, whatever its nonce: here
        // Brandon himself submits her third proof, so there is no reward to pay.
        closeWith(alice, channelId, brandonProof, brandonSig, alicePaid[1]);
        vm.prank(brandon);
        network.updateClaim(channelId, aliceProofs[2], aliceSigs[2], "", emptyWatch(), "");

        vm.warp(info(channelId).settleAt);
        network.settle(channelId);

        assertEq(token.balanceOf(alice), 0, "alice loses her whole deposit");
        assertEq(token.balanceOf(brandon), ALICE_DEPOSIT + BRANDON_DEPOSIT, "brandon gets everything");
        assertEq(token.balanceOf(address(network)), 0, "channel emptied");
    }

    function test_honestClose_paysOfflineBrandonWhatHeWasOwed() public {
        // Alice declares everything she paid and submits Brandon's payment; Brandon never
        // comes online and no watcher acts.
        uint256 claim = alicePaid[3];
        closeWith(alice, channelId, brandonProof, brandonSig, claim);
        uint256 settleAt = info(channelId).settleAt;

        vm.warp(settleAt - 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.HoldPeriodNotOver.selector, settleAt));
        network.settle(channelId);

        vm.warp(settleAt);
        vm.prank(carol);
        network.settle(channelId);

        uint256 brandonOwed = BRANDON_DEPOSIT + claim - BRANDON_PAID;
        assertEq(token.balanceOf(brandon), brandonOwed, "brandon: deposit + received - paid");
        assertEq(token.balanceOf(alice), ALICE_DEPOSIT - claim + BRANDON_PAID, "alice: deposit - paid + received");
        assertEq(brandonOwed, 85 ether, "the story's numbers");
        assertEq(token.balanceOf(watcher), 0, "no watcher involved");
        assertEq(token.balanceOf(address(network)), 0, "channel emptied");
        assertEq(uint8(info(channelId).state), uint8(TokenNetwork.ChannelState.None), "storage deleted");
    }

    function test_honestClose_watcherCannotPenalize() public {
        // With Alice's true claim on chain, even her latest proof does not exceed it: the
        // watcher's dispute reverts and the honest split stands.
        uint256 claim = alicePaid[3];
        closeWith(alice, channelId, brandonProof, brandonSig, claim);
        TokenNetwork.Watch memory watch = watchOf(channelId, aliceProofs[3], watcher, REWARD, block.timestamp + 7 days);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ClaimNotExceeded.selector, claim, claim));
        vm.prank(watcher);
        network.updateClaim(channelId, aliceProofs[3], aliceSigs[3], "", watch, watchSig);

        vm.warp(info(channelId).settleAt);
        network.settle(channelId);
        assertEq(token.balanceOf(brandon), BRANDON_DEPOSIT + claim - BRANDON_PAID, "brandon paid what he was owed");
        assertEq(token.balanceOf(alice), ALICE_DEPOSIT - claim + BRANDON_PAID, "alice keeps her share");
        assertEq(token.balanceOf(watcher), 0, "no reward without a dispute");
    }
}
