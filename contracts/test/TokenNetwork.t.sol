// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {SignatureRules} from "../src/libraries/SignatureRules.sol";

/// @notice A token that burns a fee on every transfer, so the receiver gets less than was sent.
/// With a zero fee it is a plain mintable token, used where a test needs more than SMT's supply.
contract FeeOnTransferToken is ERC20 {
    uint256 public immutable feeBps;

    constructor(uint256 feeBps_) ERC20("Fee On Transfer", "FOT") {
        feeBps = feeBps_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0) && feeBps != 0) {
            uint256 fee = value * feeBps / 10_000;
            super._update(from, address(0), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// @notice Shared helpers. Time is tracked through constants rather than re-read from
/// `block.timestamp` after a warp: with via-IR the optimizer may reuse an earlier read.
abstract contract TokenNetworkTestBase is Fixture {
    /// @dev Fixture.setUp warps here.
    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant DEADLINE = START + 1 hours;
    /// @dev The CVE-2018-10376 ("proxyOverflow") pair: their sum wraps to exactly 2^256 = 0.
    uint256 internal constant CVE_VALUE = 0x8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    uint256 internal constant CVE_FEE = 0x7000000000000000000000000000000000000000000000000000000000000001;
    uint256 internal constant STRANGER_PK = 0x57A4E;

    address internal stranger = vm.addr(STRANGER_PK);
    /// @dev alice and brandon sorted: the contract's participant1 / participant2.
    address internal p1;
    address internal p2;
    uint256 internal pk1;
    uint256 internal pk2;

    function setUp() public virtual override {
        super.setUp();
        (p1, pk1, p2, pk2) =
            alice < brandon ? (alice, ALICE_PK, brandon, BRANDON_PK) : (brandon, BRANDON_PK, alice, ALICE_PK);
        vm.label(stranger, "stranger");
    }

    function idOf(address a, address b, uint256 epoch) internal pure returns (bytes32) {
        (address lo, address hi) = a < b ? (a, b) : (b, a);
        return keccak256(abi.encode(lo, hi, epoch));
    }

    function invalidSig(address expected) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, expected);
    }

    function wrongState(bytes32 channelId, TokenNetwork.ChannelState state) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(TokenNetwork.WrongChannelState.selector, channelId, state);
    }

    function notParticipant(bytes32 channelId, address account) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(TokenNetwork.NotParticipant.selector, channelId, account);
    }

    function stateOf(bytes32 channelId) internal view returns (TokenNetwork.ChannelState) {
        return network.channelInfo(channelId).state;
    }

    function assertState(bytes32 channelId, TokenNetwork.ChannelState expected, string memory err) internal view {
        assertEq(uint256(stateOf(channelId)), uint256(expected), err);
    }

    /// @dev Every field of a settled (or never opened) channel reads as zero.
    function assertChannelDeleted(bytes32 channelId) internal view {
        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(uint256(i.state), 0, "state");
        assertEq(i.participant1, address(0), "participant1");
        assertEq(i.participant2, address(0), "participant2");
        assertEq(i.settleTimeout, 0, "settleTimeout");
        assertEq(i.settleAt, 0, "settleAt");
        assertEq(i.closer, address(0), "closer");
        assertEq(i.claimTransferred, 0, "claimTransferred");
        assertEq(i.closerReceived, 0, "closerReceived");
        assertFalse(i.penalized, "penalized");
        assertEq(i.watcher, address(0), "watcher");
        assertEq(i.reward, 0, "reward");
        assertEq(i.deposit1, 0, "deposit1");
        assertEq(i.withdrawn1, 0, "withdrawn1");
        assertEq(i.deposit2, 0, "deposit2");
        assertEq(i.withdrawn2, 0, "withdrawn2");
        assertEq(network.channelTotal(channelId), 0, "channelTotal");
    }

    function withdrawSigs(
        uint256 participantPk,
        uint256 partnerPk,
        bytes32 channelId,
        address participant,
        uint256 totalWithdraw,
        uint256 deadline
    ) internal view returns (bytes memory participantSig, bytes memory partnerSig) {
        participantSig = signWithdraw(participantPk, channelId, participant, totalWithdraw, deadline);
        partnerSig = signWithdraw(partnerPk, channelId, participant, totalWithdraw, deadline);
    }

    function doWithdraw(uint256 participantPk, uint256 partnerPk, bytes32 channelId, uint256 totalWithdraw) internal {
        address participant = vm.addr(participantPk);
        (bytes memory a, bytes memory b) =
            withdrawSigs(participantPk, partnerPk, channelId, participant, totalWithdraw, DEADLINE);
        network.withdraw(channelId, participant, totalWithdraw, DEADLINE, a, b);
    }

    function coopSigs(bytes32 channelId, uint256 balance1, uint256 balance2, uint256 deadline)
        internal
        view
        returns (bytes memory sig1, bytes memory sig2)
    {
        sig1 = signCooperativeSettle(pk1, channelId, balance1, balance2, deadline);
        sig2 = signCooperativeSettle(pk2, channelId, balance1, balance2, deadline);
    }

    /// @dev Closes at START (the caller must not have warped) and settles at the end of the hold.
    function closeAndSettle(address closer, bytes32 channelId, uint256 claim) internal {
        closeWith(closer, channelId, emptyProof(), "", claim);
        vm.warp(START + TIMEOUT);
        network.settle(channelId);
    }
}

// =============================================================================================
// constructor
// =============================================================================================

contract TokenNetworkConstructorTest is TokenNetworkTestBase {
    function test_constructor_setsImmutables() public view {
        assertEq(address(network.token()), address(token), "token");
        assertEq(network.minSettleTimeout(), MIN_TIMEOUT, "min");
        assertEq(network.maxSettleTimeout(), MAX_TIMEOUT, "max");
        assertEq(network.trustedForwarder(), address(agent), "forwarder");
        assertTrue(network.isTrustedForwarder(address(agent)), "agent trusted");
        assertFalse(network.isTrustedForwarder(relayer), "others not trusted");
    }

    function test_constructor_revertsOnZeroMinimum() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidTimeoutBounds.selector, 0, MAX_TIMEOUT));
        new TokenNetwork(token, address(agent), registry, 0, MAX_TIMEOUT);
    }

    function test_constructor_revertsOnMinimumAboveMaximum() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidTimeoutBounds.selector, 2 hours, 1 hours));
        new TokenNetwork(token, address(agent), registry, 2 hours, 1 hours);
    }

    function test_constructor_revertsOnMaximumAboveUint32() public {
        uint256 max = uint256(type(uint32).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidTimeoutBounds.selector, 1, max));
        new TokenNetwork(token, address(agent), registry, 1, max);
    }

    function test_constructor_acceptsEdgeBounds() public {
        TokenNetwork widest = new TokenNetwork(token, address(agent), registry, 1, type(uint32).max);
        assertEq(widest.minSettleTimeout(), 1, "min 1");
        assertEq(widest.maxSettleTimeout(), type(uint32).max, "max 2^32-1");
        TokenNetwork fixedTimeout = new TokenNetwork(token, address(agent), registry, 5, 5);
        assertEq(fixedTimeout.minSettleTimeout(), 5, "min == max");
        assertEq(fixedTimeout.maxSettleTimeout(), 5, "min == max");
    }

    function testFuzz_constructor_bounds(uint256 min, uint256 max) public {
        min = bound(min, 0, uint256(type(uint32).max) + 2);
        max = bound(max, 0, uint256(type(uint32).max) + 2);
        bool valid = min != 0 && min <= max && max <= type(uint32).max;
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidTimeoutBounds.selector, min, max));
        }
        TokenNetwork deployed = new TokenNetwork(token, address(agent), registry, min, max);
        if (valid) {
            assertEq(deployed.minSettleTimeout(), min, "min");
            assertEq(deployed.maxSettleTimeout(), max, "max");
        }
    }
}

// =============================================================================================
// open / openWithDeposit
// =============================================================================================

contract TokenNetworkOpenTest is TokenNetworkTestBase {
    function test_open_idIsSortedPairAtEpochOne() public {
        bytes32 expected = keccak256(abi.encode(p1, p2, uint256(1)));
        (bytes32 before, uint256 epochBefore) = network.currentChannel(alice, brandon);
        assertEq(before, expected, "currentChannel predicts the next id");
        assertEq(epochBefore, 1, "first epoch is 1");
        assertState(expected, TokenNetwork.ChannelState.None, "nothing stored yet");

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelOpened(expected, p1, p2, 1, TIMEOUT);
        vm.prank(alice);
        bytes32 channelId = network.open(brandon, TIMEOUT);

        assertEq(channelId, expected, "id");
        assertEq(network.channelIdAt(brandon, alice, 1), expected, "channelIdAt is order-free");
        (bytes32 current, uint256 epoch) = network.currentChannel(brandon, alice);
        assertEq(current, expected, "currentChannel either order");
        assertEq(epoch, 1, "epoch");

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(uint256(i.state), uint256(TokenNetwork.ChannelState.Open), "state");
        assertEq(i.participant1, p1, "participant1");
        assertEq(i.participant2, p2, "participant2");
        assertEq(i.settleTimeout, TIMEOUT, "settleTimeout");
        assertEq(i.settleAt, 0, "no settleAt while open");
        assertEq(i.closer, address(0), "no closer while open");
        assertEq(i.deposit1 + i.deposit2 + i.withdrawn1 + i.withdrawn2, 0, "no funds");
        (uint256 d, uint256 w) = network.participantInfo(channelId, alice);
        assertEq(d + w, 0, "participantInfo zero");
    }

    function test_open_sameIdWhicheverSideOpens() public {
        vm.prank(brandon);
        bytes32 channelId = network.open(alice, TIMEOUT);
        assertEq(channelId, keccak256(abi.encode(p1, p2, uint256(1))), "id");
        assertEq(network.channelInfo(channelId).participant1, p1, "participant1 is the lower address");
    }

    function test_open_revertsOnZeroPartner() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidPartner.selector, address(0)));
        vm.prank(alice);
        network.open(address(0), TIMEOUT);
    }

    function test_open_revertsOnSelf() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidPartner.selector, alice));
        vm.prank(alice);
        network.open(alice, TIMEOUT);
    }

    function test_open_revertsBelowMinimumTimeout() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                TokenNetwork.InvalidSettleTimeout.selector, MIN_TIMEOUT - 1, MIN_TIMEOUT, MAX_TIMEOUT
            )
        );
        vm.prank(alice);
        network.open(brandon, MIN_TIMEOUT - 1);
    }

    function test_open_revertsAboveMaximumTimeout() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                TokenNetwork.InvalidSettleTimeout.selector, MAX_TIMEOUT + 1, MIN_TIMEOUT, MAX_TIMEOUT
            )
        );
        vm.prank(alice);
        network.open(brandon, MAX_TIMEOUT + 1);
    }

    function test_open_acceptsTimeoutBounds() public {
        vm.prank(alice);
        bytes32 shortest = network.open(brandon, MIN_TIMEOUT);
        vm.prank(alice);
        bytes32 longest = network.open(carol, MAX_TIMEOUT);
        assertEq(network.channelInfo(shortest).settleTimeout, MIN_TIMEOUT, "min");
        assertEq(network.channelInfo(longest).settleTimeout, MAX_TIMEOUT, "max");
    }

    function test_open_revertsOnSecondOpenSameDirection() public {
        bytes32 channelId = openChannel(alice, brandon);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelAlreadyExists.selector, channelId));
        vm.prank(alice);
        network.open(brandon, TIMEOUT);
    }

    function test_open_revertsOnSecondOpenOtherDirection() public {
        bytes32 channelId = openChannel(alice, brandon);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelAlreadyExists.selector, channelId));
        vm.prank(brandon);
        network.open(alice, MIN_TIMEOUT);
        assertEq(network.channelInfo(channelId).settleTimeout, TIMEOUT, "first channel untouched");
    }

    function test_open_revertsWhileClosed() public {
        bytes32 channelId = openChannel(alice, brandon);
        closeWith(alice, channelId, emptyProof(), "", 0);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelAlreadyExists.selector, channelId));
        vm.prank(brandon);
        network.open(alice, TIMEOUT);
        assertState(channelId, TokenNetwork.ChannelState.Closed, "still closed");
    }

    function test_openWithDeposit_opensAndPullsDeposit() public {
        fund(alice, 100);
        vm.prank(alice);
        token.approve(address(network), 100);
        bytes32 expected = idOf(alice, brandon, 1);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelOpened(expected, p1, p2, 1, TIMEOUT);
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelDeposited(expected, alice, 100);
        vm.prank(alice);
        bytes32 channelId = network.openWithDeposit(brandon, TIMEOUT, 100);

        assertEq(channelId, expected, "id");
        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, 100, "alice's deposit");
        (uint256 partnerDeposit,) = network.participantInfo(channelId, brandon);
        assertEq(partnerDeposit, 0, "brandon's deposit");
        assertEq(token.balanceOf(alice), 0, "alice paid");
        assertEq(token.balanceOf(address(network)), networkBefore + 100, "network holds it");
        assertEq(network.channelTotal(channelId), 100, "total");
    }

    function test_openWithDeposit_revertsOnOpenErrors() public {
        fund(alice, 100);
        vm.prank(alice);
        token.approve(address(network), 100);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidPartner.selector, alice));
        vm.prank(alice);
        network.openWithDeposit(alice, TIMEOUT, 100);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.InvalidSettleTimeout.selector, 0, MIN_TIMEOUT, MAX_TIMEOUT));
        vm.prank(alice);
        network.openWithDeposit(brandon, 0, 100);

        bytes32 channelId = openChannel(brandon, alice);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelAlreadyExists.selector, channelId));
        vm.prank(alice);
        network.openWithDeposit(brandon, TIMEOUT, 100);
        assertEq(token.balanceOf(alice), 100, "nothing pulled");
    }

    function test_openWithDeposit_revertsOnZeroAmount() public {
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotIncreased.selector, 0, 0));
        vm.prank(alice);
        network.openWithDeposit(brandon, TIMEOUT, 0);
        assertState(idOf(alice, brandon, 1), TokenNetwork.ChannelState.None, "open rolled back");
    }

    function test_openWithDeposit_revertsWholeOpenWithoutAllowance() public {
        fund(alice, 100);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(network), 0, 100)
        );
        vm.prank(alice);
        network.openWithDeposit(brandon, TIMEOUT, 100);
        assertState(idOf(alice, brandon, 1), TokenNetwork.ChannelState.None, "open rolled back");
    }
}

// =============================================================================================
// deposit / depositWithPermit
// =============================================================================================

contract TokenNetworkDepositTest is TokenNetworkTestBase {
    bytes32 internal channelId;

    function setUp() public override {
        super.setUp();
        channelId = openChannel(alice, brandon);
    }

    function test_deposit_anyoneMayFundAnyone() public {
        fund(carol, 100);
        vm.prank(carol);
        token.approve(address(network), 100);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelDeposited(channelId, alice, 100);
        vm.prank(carol);
        network.deposit(channelId, alice, 100);

        (uint256 deposited, uint256 withdrawn) = network.participantInfo(channelId, alice);
        assertEq(deposited, 100, "credited to alice");
        assertEq(withdrawn, 0, "withdrawn");
        assertEq(token.balanceOf(carol), 0, "carol paid");
        assertEq(token.balanceOf(alice), 0, "alice paid nothing");
        assertEq(token.balanceOf(address(network)), networkBefore + 100, "network received");
        assertEq(network.channelTotal(channelId), 100, "total");
    }

    function test_deposit_pullsOnlyTheIncrease() public {
        depositFor(channelId, alice, 100);
        fund(alice, 500);
        vm.prank(alice);
        token.approve(address(network), 500);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelDeposited(channelId, alice, 150);
        vm.prank(alice);
        network.deposit(channelId, alice, 150);

        assertEq(token.balanceOf(alice), 450, "pulled 50");
        assertEq(token.balanceOf(address(network)), networkBefore + 50, "received 50");
        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, 150, "total deposit");
    }

    function test_deposit_replayOfSameTotalReverts() public {
        depositFor(channelId, alice, 100);
        fund(alice, 500);
        vm.prank(alice);
        token.approve(address(network), 500);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotIncreased.selector, 100, 100));
        vm.prank(alice);
        network.deposit(channelId, alice, 100);
        assertEq(token.balanceOf(alice), 500, "nothing pulled");
        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, 100, "unchanged");
    }

    function test_deposit_lowerTotalReverts() public {
        depositFor(channelId, alice, 100);
        fund(alice, 500);
        vm.prank(alice);
        token.approve(address(network), 500);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotIncreased.selector, 50, 100));
        vm.prank(alice);
        network.deposit(channelId, alice, 50);
        assertEq(token.balanceOf(alice), 500, "nothing pulled");
    }

    function test_deposit_revertsForNonParticipant() public {
        fund(carol, 100);
        vm.prank(carol);
        token.approve(address(network), 100);
        vm.expectRevert(notParticipant(channelId, carol));
        vm.prank(carol);
        network.deposit(channelId, carol, 100);
        assertEq(token.balanceOf(carol), 100, "nothing pulled");
    }

    function test_deposit_revertsOnUnknownChannel() public {
        bytes32 unknown = idOf(alice, carol, 1);
        vm.expectRevert(wrongState(unknown, TokenNetwork.ChannelState.None));
        vm.prank(alice);
        network.deposit(unknown, alice, 100);
    }

    function test_deposit_revertsOnClosedChannel() public {
        fund(alice, 100);
        vm.prank(alice);
        token.approve(address(network), 100);
        closeWith(brandon, channelId, emptyProof(), "", 0);
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Closed));
        vm.prank(alice);
        network.deposit(channelId, alice, 100);
        assertEq(token.balanceOf(alice), 100, "nothing pulled");
    }

    function test_deposit_revertsAboveMaxDeposit() public {
        uint256 max = network.MAX_DEPOSIT();
        assertEq(max, type(uint128).max >> 1, "2^127 - 1: two deposits fit 128 bits");
        depositFor(channelId, alice, 100);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositTooLarge.selector, max + 1, max));
        vm.prank(brandon);
        network.deposit(channelId, brandon, max + 1);
        // The two deposits together above 2^128 - 1.
        uint256 overflowing = uint256(type(uint128).max) - 99;
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositTooLarge.selector, overflowing, max));
        vm.prank(brandon);
        network.deposit(channelId, brandon, overflowing);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositTooLarge.selector, CVE_VALUE, max));
        vm.prank(brandon);
        network.deposit(channelId, brandon, CVE_VALUE);
        (uint256 deposited,) = network.participantInfo(channelId, brandon);
        assertEq(deposited, 0, "brandon credited nothing");
        assertEq(network.channelTotal(channelId), 100, "only alice's deposit");
    }

    function test_deposit_acceptsMaxDepositOnBothSides() public {
        // SMT's supply is far below 2^127, so the edge is checked on a plain mintable token.
        FeeOnTransferToken big = new FeeOnTransferToken(0);
        TokenNetwork bigNetwork = new TokenNetwork(IERC20(address(big)), address(agent), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.prank(alice);
        bytes32 id = bigNetwork.open(brandon, TIMEOUT);
        uint256 max = bigNetwork.MAX_DEPOSIT();
        big.mint(alice, 2 * max + 1);
        vm.prank(alice);
        big.approve(address(bigNetwork), type(uint256).max);

        vm.prank(alice);
        bigNetwork.deposit(id, brandon, max);
        vm.prank(alice);
        bigNetwork.deposit(id, alice, max);

        assertEq(bigNetwork.channelTotal(id), 2 * max, "total");
        assertLe(bigNetwork.channelTotal(id), type(uint128).max, "both together fit 128 bits");
        assertEq(big.balanceOf(address(bigNetwork)), 2 * max, "held");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositTooLarge.selector, max + 1, max));
        vm.prank(alice);
        bigNetwork.deposit(id, alice, max + 1);
        assertEq(big.balanceOf(alice), 1, "nothing more pulled");
    }

    function test_deposit_revertsOnFeeOnTransferToken() public {
        FeeOnTransferToken feeToken = new FeeOnTransferToken(100); // 1%
        TokenNetwork feeNetwork = new TokenNetwork(IERC20(address(feeToken)), address(agent), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.prank(alice);
        bytes32 id = feeNetwork.open(brandon, TIMEOUT);
        feeToken.mint(alice, 1000);
        vm.prank(alice);
        feeToken.approve(address(feeNetwork), 1000);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.TransferAmountMismatch.selector, 1000, 990));
        vm.prank(alice);
        feeNetwork.deposit(id, alice, 1000);
        assertEq(feeToken.balanceOf(alice), 1000, "rolled back");
        (uint256 deposited,) = feeNetwork.participantInfo(id, alice);
        assertEq(deposited, 0, "not credited");
    }

    function testFuzz_deposit_creditsExactTotals(uint256 first, uint256 second) public {
        first = bound(first, 1, SUPPLY / 4);
        second = bound(second, first + 1, SUPPLY / 2);
        uint256 networkBefore = token.balanceOf(address(network));
        depositFor(channelId, brandon, first);
        depositFor(channelId, brandon, second);
        (uint256 deposited,) = network.participantInfo(channelId, brandon);
        assertEq(deposited, second, "total deposit");
        assertEq(token.balanceOf(address(network)), networkBefore + second, "network balance");
    }

    // ---- depositWithPermit ------------------------------------------------------------------

    function test_depositWithPermit_worksWithFreshPermit() public {
        fund(alice, 100);
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, address(network), 100, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelDeposited(channelId, alice, 100);
        vm.prank(alice);
        network.depositWithPermit(channelId, alice, 100, 100, DEADLINE, v, r, s);

        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, 100, "deposit");
        assertEq(token.balanceOf(alice), 0, "alice paid");
        assertEq(token.balanceOf(address(network)), networkBefore + 100, "network received");
        assertEq(token.nonces(alice), 1, "permit consumed");
        assertEq(token.allowance(alice, address(network)), 0, "allowance spent");
    }

    function test_depositWithPermit_worksWhenPermitFrontRun() public {
        fund(alice, 100);
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, address(network), 100, DEADLINE);
        // Someone copies the permit out of the mempool and submits it to the token first.
        vm.prank(stranger);
        token.permit(alice, address(network), 100, DEADLINE, v, r, s);
        assertEq(token.nonces(alice), 1, "front-run permit used the nonce");

        vm.prank(alice);
        network.depositWithPermit(channelId, alice, 100, 100, DEADLINE, v, r, s);

        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, 100, "deposit went through");
        assertEq(token.balanceOf(alice), 0, "alice paid");
        assertEq(token.allowance(alice, address(network)), 0, "allowance spent");
    }

    function test_depositWithPermit_revertsWithBadPermitAndNoAllowance() public {
        fund(alice, 100);
        // Signed by carol's key, so the permit for alice does not verify.
        (uint8 v, bytes32 r, bytes32 s) = signPermit(CAROL_PK, address(network), 100, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(network), 0, 100)
        );
        vm.prank(alice);
        network.depositWithPermit(channelId, alice, 100, 100, DEADLINE, v, r, s);
        assertEq(token.balanceOf(alice), 100, "nothing pulled");
    }

    function test_depositWithPermit_revertsWhenFrontRunPermitTooSmall() public {
        fund(alice, 100);
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, address(network), 60, DEADLINE);
        vm.prank(stranger);
        token.permit(alice, address(network), 60, DEADLINE, v, r, s);

        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(network), 60, 100)
        );
        vm.prank(alice);
        network.depositWithPermit(channelId, alice, 100, 60, DEADLINE, v, r, s);
        assertEq(token.balanceOf(alice), 100, "nothing pulled");
    }
}

// =============================================================================================
// withdraw
// =============================================================================================

contract TokenNetworkWithdrawTest is TokenNetworkTestBase {
    uint256 internal constant D_ALICE = 100;
    uint256 internal constant D_BRANDON = 50;
    uint256 internal constant DEPOSITS = D_ALICE + D_BRANDON;
    uint256 internal constant OTHER_FUNDS = 1000;

    bytes32 internal channelId;
    bytes32 internal otherChannel;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(D_ALICE, D_BRANDON);
        // Other users' funds sit in the same contract: nothing here may ever reach them.
        otherChannel = openChannel(carol, watcher);
        depositFor(otherChannel, carol, OTHER_FUNDS);
    }

    function test_withdraw_paysParticipant() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelWithdrawn(channelId, alice, 30);
        vm.prank(stranger); // anyone may submit the two signatures
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, sigB);

        assertEq(token.balanceOf(alice), 30, "alice received");
        assertEq(token.balanceOf(stranger), 0, "submitter received nothing");
        assertEq(token.balanceOf(address(network)), networkBefore - 30, "network paid");
        (uint256 deposited, uint256 withdrawn) = network.participantInfo(channelId, alice);
        assertEq(deposited, D_ALICE, "deposit unchanged");
        assertEq(withdrawn, 30, "withdrawn");
        assertEq(network.channelTotal(channelId), DEPOSITS - 30, "total");

        // A higher total pays only the difference.
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, 45);
        assertEq(token.balanceOf(alice), 45, "second withdrawal pays the difference");
        (, withdrawn) = network.participantInfo(channelId, alice);
        assertEq(withdrawn, 45, "withdrawn total");
    }

    function test_withdraw_acceptsDeadlineNow() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(BRANDON_PK, ALICE_PK, channelId, brandon, 10, START);
        network.withdraw(channelId, brandon, 10, START, sigA, sigB);
        assertEq(token.balanceOf(brandon), 10, "paid at the deadline");
    }

    function test_withdraw_revertsAfterDeadline() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        vm.warp(DEADLINE + 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.SignatureExpired.selector, DEADLINE));
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, sigB);
        assertEq(token.balanceOf(alice), 0, "nothing paid");
    }

    function test_withdraw_revertsOnReplay() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, sigB);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawNotIncreased.selector, 30, 30));
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, sigB);
        assertEq(token.balanceOf(alice), 30, "paid once");
    }

    function test_withdraw_revertsOnLowerOrZeroTotal() public {
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, 30);
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 20, DEADLINE);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawNotIncreased.selector, 20, 30));
        network.withdraw(channelId, alice, 20, DEADLINE, sigA, sigB);

        (sigA, sigB) = withdrawSigs(BRANDON_PK, ALICE_PK, channelId, brandon, 0, DEADLINE);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawNotIncreased.selector, 0, 0));
        network.withdraw(channelId, brandon, 0, DEADLINE, sigA, sigB);
    }

    function test_withdraw_revertsAboveBothDeposits() public {
        (bytes memory sigA, bytes memory sigB) =
            withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, DEPOSITS + 1, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, DEPOSITS + 1, 0, DEPOSITS)
        );
        network.withdraw(channelId, alice, DEPOSITS + 1, DEADLINE, sigA, sigB);
    }

    function test_withdraw_bothKeysCannotTakeMoreThanChannelHolds() public {
        // One person holding both keys signs everything: together the two withdrawals must
        // stop at D1 + D2, or the excess would come out of carol's channel.
        uint256 networkBefore = token.balanceOf(address(network));
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, D_ALICE);
        (bytes memory sigB, bytes memory sigA) =
            withdrawSigs(BRANDON_PK, ALICE_PK, channelId, brandon, D_BRANDON + 1, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, D_BRANDON + 1, D_ALICE, DEPOSITS)
        );
        network.withdraw(channelId, brandon, D_BRANDON + 1, DEADLINE, sigB, sigA);

        doWithdraw(BRANDON_PK, ALICE_PK, channelId, D_BRANDON);
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon), DEPOSITS, "took exactly the channel");
        assertEq(token.balanceOf(address(network)), networkBefore - DEPOSITS, "network paid D1 + D2");
        assertEq(token.balanceOf(address(network)), OTHER_FUNDS, "carol's channel intact");
        assertEq(network.channelTotal(channelId), 0, "channel empty");

        (sigA, sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, D_ALICE + 1, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, D_ALICE + 1, D_BRANDON, DEPOSITS)
        );
        network.withdraw(channelId, alice, D_ALICE + 1, DEADLINE, sigA, sigB);
    }

    function test_withdraw_receiverMayExceedOwnDepositUpToCap() public {
        // Brandon paid alice 70 off chain; both sign alice's withdrawal of 120 > her deposit.
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, 120);
        assertEq(token.balanceOf(alice), 120, "alice withdrew beyond her deposit");
        assertEq(network.channelTotal(channelId), DEPOSITS - 120, "total");

        (bytes memory sigB, bytes memory sigA) =
            withdrawSigs(BRANDON_PK, ALICE_PK, channelId, brandon, DEPOSITS - 120 + 1, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, DEPOSITS - 120 + 1, 120, DEPOSITS)
        );
        network.withdraw(channelId, brandon, DEPOSITS - 120 + 1, DEADLINE, sigB, sigA);

        (sigA, sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, DEPOSITS + 1, DEADLINE);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, DEPOSITS + 1, 0, DEPOSITS)
        );
        network.withdraw(channelId, alice, DEPOSITS + 1, DEADLINE, sigA, sigB);
        assertEq(token.balanceOf(address(network)), OTHER_FUNDS + DEPOSITS - 120, "no more left");
    }

    function test_withdraw_rejectsProxyOverflowAmount() public {
        // CVE-2018-10376: a total near 2^255 must not wrap any comparison into a pass.
        (bytes memory sigA, bytes memory sigB) =
            withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, CVE_VALUE, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, CVE_VALUE, 0, DEPOSITS));
        network.withdraw(channelId, alice, CVE_VALUE, DEADLINE, sigA, sigB);

        doWithdraw(BRANDON_PK, ALICE_PK, channelId, 10);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, CVE_VALUE, 10, DEPOSITS));
        network.withdraw(channelId, alice, CVE_VALUE, DEADLINE, sigA, sigB);

        assertEq(token.balanceOf(alice), 0, "alice got nothing");
        assertEq(token.balanceOf(address(network)), networkBefore - 10, "only brandon's 10 left");
        (, uint256 withdrawn) = network.participantInfo(channelId, alice);
        assertEq(withdrawn, 0, "alice's withdrawn unchanged");
    }

    function test_withdraw_revertsOnWrongParticipantSignature() public {
        bytes memory byStranger = signWithdraw(STRANGER_PK, channelId, alice, 30, DEADLINE);
        bytes memory byBrandon = signWithdraw(BRANDON_PK, channelId, alice, 30, DEADLINE);
        vm.expectRevert(invalidSig(alice));
        network.withdraw(channelId, alice, 30, DEADLINE, byStranger, byBrandon);
        // The partner's signature twice does not stand in for the participant's.
        vm.expectRevert(invalidSig(alice));
        network.withdraw(channelId, alice, 30, DEADLINE, byBrandon, byBrandon);
        assertEq(token.balanceOf(alice), 0, "nothing paid");
    }

    function test_withdraw_revertsOnWrongPartnerSignature() public {
        bytes memory byAlice = signWithdraw(ALICE_PK, channelId, alice, 30, DEADLINE);
        bytes memory byStranger = signWithdraw(STRANGER_PK, channelId, alice, 30, DEADLINE);
        vm.expectRevert(invalidSig(brandon));
        network.withdraw(channelId, alice, 30, DEADLINE, byAlice, byStranger);
        vm.expectRevert(invalidSig(brandon));
        network.withdraw(channelId, alice, 30, DEADLINE, byAlice, byAlice);
        // Signed for another amount.
        bytes memory brandonFor20 = signWithdraw(BRANDON_PK, channelId, alice, 20, DEADLINE);
        vm.expectRevert(invalidSig(brandon));
        network.withdraw(channelId, alice, 30, DEADLINE, byAlice, brandonFor20);
        assertEq(token.balanceOf(alice), 0, "nothing paid");
    }

    function test_withdraw_revertsOnHighS() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        bytes memory highA = toHighS(sigA);
        bytes memory highB = toHighS(sigB);
        vm.expectRevert(invalidSig(alice));
        network.withdraw(channelId, alice, 30, DEADLINE, highA, sigB);
        vm.expectRevert(invalidSig(brandon));
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, highB);
        assertEq(token.balanceOf(alice), 0, "nothing paid");
    }

    function test_withdraw_revertsOnZeroRecovery() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        bytes memory zero = zeroRecoverySig();
        vm.expectRevert(invalidSig(alice));
        network.withdraw(channelId, alice, 30, DEADLINE, zero, sigB);
        vm.expectRevert(invalidSig(brandon));
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, zero);
        vm.expectRevert(invalidSig(alice));
        network.withdraw(channelId, alice, 30, DEADLINE, "", sigB);
    }

    function test_withdraw_revertsForNonParticipant() public {
        (bytes memory sigC, bytes memory sigB) = withdrawSigs(CAROL_PK, BRANDON_PK, channelId, carol, 30, DEADLINE);
        vm.expectRevert(notParticipant(channelId, carol));
        network.withdraw(channelId, carol, 30, DEADLINE, sigC, sigB);
    }

    function test_withdraw_revertsOnClosedChannel() public {
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 30, DEADLINE);
        closeWith(brandon, channelId, emptyProof(), "", 0);
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Closed));
        network.withdraw(channelId, alice, 30, DEADLINE, sigA, sigB);
        assertEq(token.balanceOf(alice), 0, "nothing paid");
    }

    function test_withdraw_revertsOnUnknownChannel() public {
        bytes32 unknown = idOf(alice, brandon, 2);
        (bytes memory sigA, bytes memory sigB) = withdrawSigs(ALICE_PK, BRANDON_PK, unknown, alice, 30, DEADLINE);
        vm.expectRevert(wrongState(unknown, TokenNetwork.ChannelState.None));
        network.withdraw(unknown, alice, 30, DEADLINE, sigA, sigB);
    }

    function testFuzz_withdraw_neverExceedsDeposits(uint256 wAlice, uint256 wBrandon, bool nearCap) public {
        wAlice = bound(wAlice, 1, DEPOSITS);
        // An unbounded amount is almost always above the cap: half the runs stay around it, so
        // that accepted withdrawals (and the exact edge) are fuzzed too.
        wBrandon = nearCap ? bound(wBrandon, 1, DEPOSITS + 1) : bound(wBrandon, 1, type(uint256).max);
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, wAlice);
        (bytes memory sigB, bytes memory sigA) =
            withdrawSigs(BRANDON_PK, ALICE_PK, channelId, brandon, wBrandon, DEADLINE);
        if (wBrandon > DEPOSITS - wAlice) {
            vm.expectRevert(
                abi.encodeWithSelector(TokenNetwork.WithdrawExceedsDeposits.selector, wBrandon, wAlice, DEPOSITS)
            );
        }
        network.withdraw(channelId, brandon, wBrandon, DEADLINE, sigB, sigA);
        bool accepted = wBrandon <= DEPOSITS - wAlice;
        assertEq(token.balanceOf(brandon), accepted ? wBrandon : 0, "brandon paid exactly an accepted withdrawal");
        assertEq(token.balanceOf(alice), wAlice, "alice paid her withdrawal");
        (, uint256 withdrawn) = network.participantInfo(channelId, brandon);
        assertEq(withdrawn, accepted ? wBrandon : 0, "recorded only when accepted");
        assertGe(token.balanceOf(address(network)), OTHER_FUNDS, "other channels intact");
        assertEq(
            token.balanceOf(address(network)),
            OTHER_FUNDS + network.channelTotal(channelId),
            "network holds exactly what channels hold"
        );
    }
}

// =============================================================================================
// cooperativeSettle
// =============================================================================================

contract TokenNetworkCooperativeSettleTest is TokenNetworkTestBase {
    uint256 internal constant TOTAL = 150;

    bytes32 internal channelId;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(100, 50);
    }

    function test_cooperativeSettle_paysOutAndEndsChannel() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 80, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));
        uint256 before1 = token.balanceOf(p1);
        uint256 before2 = token.balanceOf(p2);

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelCooperativelySettled(channelId, 70, 80);
        vm.prank(stranger);
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, sig2);

        assertEq(token.balanceOf(p1), before1 + 70, "participant1 paid balance1");
        assertEq(token.balanceOf(p2), before2 + 80, "participant2 paid balance2");
        assertEq(token.balanceOf(address(network)), networkBefore - TOTAL, "network paid total");
        assertChannelDeleted(channelId);

        (bytes32 next, uint256 epoch) = network.currentChannel(alice, brandon);
        assertEq(epoch, 2, "epoch advanced");
        assertEq(next, keccak256(abi.encode(p1, p2, uint256(2))), "next id");
        assertTrue(next != channelId, "new id");
        bytes32 reopened = openChannel(brandon, alice);
        assertEq(reopened, next, "reopen uses the new id");
    }

    function test_cooperativeSettle_allToOneSide() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 0, TOTAL, DEADLINE);
        uint256 before2 = token.balanceOf(p2);
        network.cooperativeSettle(channelId, 0, TOTAL, DEADLINE, sig1, sig2);
        assertEq(token.balanceOf(p1), 0, "participant1 nothing");
        assertEq(token.balanceOf(p2), before2 + TOTAL, "participant2 everything");
    }

    function test_cooperativeSettle_paysTheRestToParticipant2() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 79, DEADLINE);
        uint256 before1 = token.balanceOf(p1);
        uint256 before2 = token.balanceOf(p2);
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelCooperativelySettled(channelId, 70, 80);
        network.cooperativeSettle(channelId, 70, 79, DEADLINE, sig1, sig2);
        assertEq(token.balanceOf(p1), before1 + 70, "participant1 paid what it signed");
        assertEq(token.balanceOf(p2), before2 + 80, "participant2 paid the rest");
        assertChannelDeleted(channelId);
    }

    /// A stranger deposits one wei for either participant just before the settlement lands
    /// (the griefing that made it revert with BalancesMismatch): it lands all the same.
    function test_cooperativeSettle_survivesADepositAfterSigning() public {
        for (uint256 side = 0; side < 2; side++) {
            bytes32 id = side == 0 ? channelId : openAndFund(100, 50);
            (bytes memory sig1, bytes memory sig2) = coopSigs(id, 70, 80, DEADLINE);
            address funded = side == 0 ? p1 : p2;
            (uint256 deposited,) = network.participantInfo(id, funded);
            fund(stranger, 1);
            vm.startPrank(stranger);
            token.approve(address(network), 1);
            network.deposit(id, funded, deposited + 1);
            vm.stopPrank();
            assertEq(network.channelTotal(id), TOTAL + 1, "the grief landed first");

            uint256 before1 = token.balanceOf(p1);
            uint256 before2 = token.balanceOf(p2);
            network.cooperativeSettle(id, 70, 80, DEADLINE, sig1, sig2);
            assertEq(token.balanceOf(p1), before1 + 70, "participant1 gets what it signed");
            assertEq(token.balanceOf(p2), before2 + 81, "participant2 gets the rest");
            assertChannelDeleted(id);
        }
    }

    function test_cooperativeSettle_revertsWhenAWithdrawalLeftTooLittle() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 80, DEADLINE);
        doWithdraw(pk2, pk1, channelId, 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, 70, 80, TOTAL - 1));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, sig2);
        assertState(channelId, TokenNetwork.ChannelState.Open, "still open");
    }

    function test_cooperativeSettle_revertsWhenSumAboveTotal() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 71, 80, DEADLINE);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, 71, 80, TOTAL));
        network.cooperativeSettle(channelId, 71, 80, DEADLINE, sig1, sig2);
        (sig1, sig2) = coopSigs(channelId, TOTAL + 1, 0, DEADLINE);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, TOTAL + 1, 0, TOTAL));
        network.cooperativeSettle(channelId, TOTAL + 1, 0, DEADLINE, sig1, sig2);
    }

    function test_cooperativeSettle_rejectsProxyOverflowOnEmptyChannel() public {
        unchecked {
            assertEq(CVE_VALUE + CVE_FEE, 0, "the pair wraps to zero");
        }
        vm.prank(alice);
        bytes32 empty = network.open(carol, TIMEOUT);
        (uint256 b1, uint256 b2, uint256 k1, uint256 k2) =
            alice < carol ? (CVE_VALUE, CVE_FEE, ALICE_PK, CAROL_PK) : (CVE_VALUE, CVE_FEE, CAROL_PK, ALICE_PK);
        bytes memory sig1 = signCooperativeSettle(k1, empty, b1, b2, DEADLINE);
        bytes memory sig2 = signCooperativeSettle(k2, empty, b1, b2, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, CVE_VALUE, CVE_FEE, 0));
        network.cooperativeSettle(empty, b1, b2, DEADLINE, sig1, sig2);
        assertEq(token.balanceOf(address(network)), networkBefore, "no balance change");
        assertEq(token.balanceOf(alice) + token.balanceOf(carol), 0, "nothing paid");
        assertState(empty, TokenNetwork.ChannelState.Open, "still open");
    }

    function test_cooperativeSettle_rejectsProxyOverflowOnFundedChannel() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, CVE_VALUE, CVE_FEE, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, CVE_VALUE, CVE_FEE, TOTAL));
        network.cooperativeSettle(channelId, CVE_VALUE, CVE_FEE, DEADLINE, sig1, sig2);
        (sig1, sig2) = coopSigs(channelId, CVE_FEE, CVE_VALUE, DEADLINE);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, CVE_FEE, CVE_VALUE, TOTAL));
        network.cooperativeSettle(channelId, CVE_FEE, CVE_VALUE, DEADLINE, sig1, sig2);
        assertEq(token.balanceOf(address(network)), networkBefore, "no balance change");
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon), 0, "nothing paid");
        assertEq(network.channelTotal(channelId), TOTAL, "channel intact");
    }

    function test_cooperativeSettle_revertsAfterDeadline() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 80, DEADLINE);
        vm.warp(DEADLINE + 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.SignatureExpired.selector, DEADLINE));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, sig2);
        assertState(channelId, TokenNetwork.ChannelState.Open, "still open");
    }

    function test_cooperativeSettle_revertsOnInvalidSignatures() public {
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 80, DEADLINE);
        bytes memory byStranger = signCooperativeSettle(STRANGER_PK, channelId, 70, 80, DEADLINE);

        vm.expectRevert(invalidSig(p1));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, byStranger, sig2);
        vm.expectRevert(invalidSig(p2));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, byStranger);
        vm.expectRevert(invalidSig(p1));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig2, sig1);
        bytes memory high1 = toHighS(sig1);
        vm.expectRevert(invalidSig(p1));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, high1, sig2);
        bytes memory zero = zeroRecoverySig();
        vm.expectRevert(invalidSig(p2));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, zero);
        // Signed for other balances.
        vm.expectRevert(invalidSig(p1));
        network.cooperativeSettle(channelId, 80, 70, DEADLINE, sig1, sig2);
        assertState(channelId, TokenNetwork.ChannelState.Open, "still open");
    }

    function test_cooperativeSettle_revertsAfterClose() public {
        // An agreement signed before the close must not undo the close (or a penalty).
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, 70, 80, DEADLINE);
        closeWith(alice, channelId, emptyProof(), "", 0);
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Closed));
        network.cooperativeSettle(channelId, 70, 80, DEADLINE, sig1, sig2);
        assertEq(network.channelTotal(channelId), TOTAL, "funds stay for settle");
    }

    function test_cooperativeSettle_oldSignaturesFailOnReopenedChannel() public {
        // Everything signed during epoch 1, before the cooperative settle.
        (bytes memory coop1, bytes memory coop2) = coopSigs(channelId, 100, 50, DEADLINE);
        (bytes memory oldSig1, bytes memory oldSig2) = coopSigs(channelId, 70, 80, DEADLINE);
        (bytes memory wA, bytes memory wB) = withdrawSigs(ALICE_PK, BRANDON_PK, channelId, alice, 10, DEADLINE);
        (TokenNetwork.BalanceProof memory oldProof, bytes memory oldProofSig) = signedProof(BRANDON_PK, channelId, 1, 5);

        network.cooperativeSettle(channelId, 70, 80, DEADLINE, oldSig1, oldSig2);
        bytes32 reopened = openAndFund(100, 50);
        assertTrue(reopened != channelId, "new id");

        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.None));
        network.cooperativeSettle(channelId, 100, 50, DEADLINE, coop1, coop2);
        vm.expectRevert(invalidSig(p1));
        network.cooperativeSettle(reopened, 100, 50, DEADLINE, coop1, coop2);
        vm.expectRevert(invalidSig(alice));
        network.withdraw(reopened, alice, 10, DEADLINE, wA, wB);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, reopened, channelId));
        vm.prank(alice);
        network.close(reopened, oldProof, oldProofSig, "", 0, "");
        // Relabelled with the new id, the old signature no longer matches.
        oldProof.channelId = reopened;
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(reopened, oldProof, oldProofSig, "", 0, "");

        assertEq(network.channelTotal(reopened), 150, "reopened channel intact");
        assertState(reopened, TokenNetwork.ChannelState.Open, "still open");
    }

    function testFuzz_cooperativeSettle_paysBalance1AndTheRestWithinTotal(uint256 b1, uint256 b2, uint8 mode)
        public
    {
        // Two unbounded uint256 almost never fit within TOTAL: a third of the runs take a split
        // that fits (exactly or with some left for participant2), a third one just over, the
        // rest anything at all.
        if (mode % 3 == 0) {
            b1 = bound(b1, 0, TOTAL);
            b2 = bound(b2, 0, TOTAL - b1);
        } else if (mode % 3 == 1) {
            b1 = bound(b1, 0, TOTAL);
            b2 = TOTAL - b1 + 1;
        }
        (bytes memory sig1, bytes memory sig2) = coopSigs(channelId, b1, b2, DEADLINE);
        uint256 networkBefore = token.balanceOf(address(network));
        uint256 before1 = token.balanceOf(p1);
        uint256 before2 = token.balanceOf(p2);
        bool fits = b1 <= TOTAL && b2 <= TOTAL - b1;
        assertEq(fits, mode % 3 == 0 || (mode % 3 == 2 && fits), "mode picks the branch");
        if (!fits) vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesMismatch.selector, b1, b2, TOTAL));
        network.cooperativeSettle(channelId, b1, b2, DEADLINE, sig1, sig2);
        assertEq(token.balanceOf(address(network)), fits ? networkBefore - TOTAL : networkBefore, "network");
        assertEq(token.balanceOf(p1), fits ? before1 + b1 : before1, "participant1 gets balance1");
        assertEq(token.balanceOf(p2), fits ? before2 + TOTAL - b1 : before2, "participant2 gets the rest");
        assertState(
            channelId, fits ? TokenNetwork.ChannelState.None : TokenNetwork.ChannelState.Open, "ended only if it fits"
        );
    }
}

// =============================================================================================
// close
// =============================================================================================

contract TokenNetworkCloseTest is TokenNetworkTestBase {
    bytes32 internal channelId;
    /// @dev Kept in storage: via-IR may re-read `block.chainid` after `vm.chainId` changed it.
    uint256 internal homeChain = block.chainid;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(100, 50);
    }

    function test_close_withEmptyProof() public {
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelClosed(channelId, alice, 20, 0, 0, START + TIMEOUT);
        vm.prank(alice);
        network.close(channelId, emptyProof(), "", "", 20, "");

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(uint256(i.state), uint256(TokenNetwork.ChannelState.Closed), "closed");
        assertEq(i.closer, alice, "closer");
        assertEq(i.settleAt, START + TIMEOUT, "settleAt");
        assertEq(i.claimTransferred, 20, "claim");
        assertEq(i.closerReceived, 0, "received nothing");
        assertFalse(i.penalized, "not penalized");
        assertEq(network.channelTotal(channelId), 150, "funds unchanged");
    }

    function test_close_withPartnerProof() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 3, 15);
        vm.warp(START + 500);
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelClosed(channelId, brandon, 0, 15, 3, START + 500 + TIMEOUT);
        vm.prank(brandon);
        network.close(channelId, proof, sig, "", 0, "");

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(i.closer, brandon, "closer");
        assertEq(i.closerReceived, 15, "received from alice");
        assertEq(i.claimTransferred, 0, "claim");
        assertEq(i.settleAt, START + 500 + TIMEOUT, "settleAt");
    }

    function test_close_proofWithMessageHash() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 7);
        proof.messageHash = keccak256("memo");
        bytes memory sig = signProof(BRANDON_PK, proof);
        closeWith(alice, channelId, proof, sig, 0);
        assertEq(network.channelInfo(channelId).closerReceived, 7, "received");
    }

    function test_close_revertsForNonParticipant() public {
        vm.expectRevert(notParticipant(channelId, carol));
        vm.prank(carol);
        network.close(channelId, emptyProof(), "", "", 0, "");
        assertState(channelId, TokenNetwork.ChannelState.Open, "still open");
    }

    function test_close_revertsWhenNotOpen() public {
        closeWith(alice, channelId, emptyProof(), "", 0);
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Closed));
        vm.prank(brandon);
        network.close(channelId, emptyProof(), "", "", 0, "");

        bytes32 unknown = idOf(alice, carol, 1);
        vm.expectRevert(wrongState(unknown, TokenNetwork.ChannelState.None));
        vm.prank(alice);
        network.close(unknown, emptyProof(), "", "", 0, "");
        assertEq(network.channelInfo(channelId).closer, alice, "first close stands");
    }

    function test_close_revertsOnProofForAnotherChannel() public {
        bytes32 other = idOf(alice, brandon, 2);
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, other, 1, 5);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, channelId, other));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnSignatureWithEmptyProof() public {
        bytes memory sig = signProof(BRANDON_PK, emptyProof());
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, channelId, bytes32(0)));
        vm.prank(alice);
        network.close(channelId, emptyProof(), sig, "", 0, "");
    }

    function test_close_revertsOnNonceZero() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, channelId, 0, 5);
        vm.expectRevert(TokenNetwork.InvalidProofNonce.selector);
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnLockedAmountWithoutLocks() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        proof.lockedAmount = 1;
        bytes memory sig = signProof(BRANDON_PK, proof);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LockedAmountMismatch.selector, 1, 0));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnLocksRootWithoutLocks() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        proof.locksRoot = bytes32(uint256(1));
        bytes memory sig = signProof(BRANDON_PK, proof);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LocksRootMismatch.selector, bytes32(uint256(1)), bytes32(0)));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnProofSignedByCloser() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 1, 500);
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnProofSignedByStranger() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(STRANGER_PK, channelId, 1, 500);
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnHighS() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, channelId, 1, 5);
        bytes memory high = toHighS(sig);
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, high, "", 0, "");
    }

    function test_close_revertsOnZeroRecovery() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        bytes memory zero = zeroRecoverySig();
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, zero, "", 0, "");
    }

    function test_close_revertsOnEmptySignatureWithProof() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, "", "", 0, "");
        // Any single non-zero field makes the proof non-empty.
        TokenNetwork.BalanceProof memory memoOnly;
        memoOnly.messageHash = keccak256("memo");
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, channelId, bytes32(0)));
        vm.prank(alice);
        network.close(channelId, memoOnly, "", "", 0, "");
    }

    function test_close_revertsOnSignatureForAnotherChain() public {
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        vm.chainId(homeChain + 1);
        bytes memory sig = signProof(BRANDON_PK, proof);
        vm.chainId(homeChain);
        assertTrue(keccak256(sig) != keccak256(signProof(BRANDON_PK, proof)), "domain binds the chain id");
        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");
    }

    function test_close_revertsOnSignatureForAnotherNetwork() public {
        TokenNetwork second = new TokenNetwork(token, address(agent), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.prank(alice);
        bytes32 secondId = second.open(brandon, TIMEOUT);
        assertEq(secondId, channelId, "same pair, same epoch: same id on both networks");
        TokenNetwork.BalanceProof memory proof = proofOf(channelId, 1, 5);
        bytes memory sig = signDigest(BRANDON_PK, second.hashBalanceProof(proof));

        vm.expectRevert(invalidSig(brandon));
        vm.prank(alice);
        network.close(channelId, proof, sig, "", 0, "");

        // The same signature is valid where it was made for.
        vm.prank(alice);
        second.close(secondId, proof, sig, "", 0, "");
        assertEq(second.channelInfo(secondId).closerReceived, 5, "valid on its own network");
    }

    function test_close_revertsOnProofFromPreviousEpoch() public {
        (TokenNetwork.BalanceProof memory oldProof, bytes memory oldSig) = signedProof(BRANDON_PK, channelId, 4, 20);
        closeAndSettle(alice, channelId, 0);
        bytes32 reopened = openChannel(alice, brandon);
        assertEq(reopened, idOf(alice, brandon, 2), "epoch 2");

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, reopened, channelId));
        vm.prank(alice);
        network.close(reopened, oldProof, oldSig, "", 0, "");
        assertState(reopened, TokenNetwork.ChannelState.Open, "still open");
    }
}

// =============================================================================================
// updateClaim
// =============================================================================================

contract TokenNetworkUpdateClaimTest is TokenNetworkTestBase {
    uint256 internal constant CLAIM = 10;
    uint256 internal constant PROVEN = 40;
    uint256 internal constant REWARD = 7;
    uint256 internal constant WATCH_DEADLINE = START + 1 days;

    bytes32 internal channelId;
    /// @dev alice paid brandon 40 and closes declaring 10.
    TokenNetwork.BalanceProof internal lie;
    bytes internal lieSig;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(100, 50);
        (lie, lieSig) = signedProof(ALICE_PK, channelId, 5, PROVEN);
    }

    function closeLying() internal {
        closeWith(alice, channelId, emptyProof(), "", CLAIM);
    }

    function namedWatch(address who, uint256 reward, uint256 deadline)
        internal
        view
        returns (TokenNetwork.Watch memory watch, bytes memory sig)
    {
        watch = watchOf(channelId, lie, who, reward, deadline);
        sig = signWatch(BRANDON_PK, watch);
    }

    function assertNotPenalized() internal view {
        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertFalse(i.penalized, "not penalized");
        assertEq(i.watcher, address(0), "no watcher");
        assertEq(i.reward, 0, "no reward");
    }

    function test_updateClaim_byNonCloserWithEmptyWatch() public {
        closeLying();
        vm.expectEmit(address(network));
        emit TokenNetwork.CloserPenalized(channelId, brandon, address(0), PROVEN, 0);
        vm.prank(brandon);
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertTrue(i.penalized, "penalized");
        assertEq(i.watcher, address(0), "no watcher");
        assertEq(i.reward, 0, "no reward");
        assertEq(i.closer, alice, "closer");
    }

    function test_updateClaim_byNonCloserIgnoresWatch() public {
        closeLying();
        // A non-closer's own submission carries no reward, whatever watch it passes.
        (TokenNetwork.Watch memory watch,) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        vm.prank(brandon);
        network.updateClaim(channelId, lie, lieSig, "", watch, "");
        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertTrue(i.penalized, "penalized");
        assertEq(i.reward, 0, "no reward");
    }

    function test_updateClaim_byNamedWatcherWithReward() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        closeLying();
        vm.expectEmit(address(network));
        emit TokenNetwork.CloserPenalized(channelId, watcher, watcher, PROVEN, REWARD);
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertTrue(i.penalized, "penalized");
        assertEq(i.watcher, watcher, "watcher");
        assertEq(i.reward, REWARD, "reward");
    }

    function test_updateClaim_byAnyoneWithOpenWatch() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(address(0), 0, WATCH_DEADLINE);
        closeLying();
        vm.expectEmit(address(network));
        emit TokenNetwork.CloserPenalized(channelId, stranger, address(0), PROVEN, 0);
        vm.prank(stranger);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertTrue(i.penalized, "penalized");
        assertEq(i.watcher, address(0), "no watcher");
        assertEq(i.reward, 0, "no reward");
    }

    function test_updateClaim_whenParticipant2Closes() public {
        // The mirror case: brandon closes lying, alice disputes.
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, channelId, 2, 30);
        closeWith(brandon, channelId, emptyProof(), "", 29);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.CloserCannotUpdate.selector, brandon));
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
        vm.prank(alice);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
        assertTrue(network.channelInfo(channelId).penalized, "penalized");
    }

    function test_updateClaim_revertsForCloser() public {
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.CloserCannotUpdate.selector, alice));
        vm.prank(alice);
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");
        assertNotPenalized();
    }

    function test_updateClaim_revertsWhenProofEqualsClaim() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 9, CLAIM);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ClaimNotExceeded.selector, CLAIM, CLAIM));
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
        assertNotPenalized();
    }

    function test_updateClaim_revertsWhenProofBelowClaim() public {
        // A higher nonce does not matter: only the amount shows a lie.
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 99, CLAIM - 1);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ClaimNotExceeded.selector, CLAIM - 1, CLAIM));
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
        assertNotPenalized();
    }

    function test_updateClaim_secondUpdateByNonCloserCannotOverwriteReward() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        closeLying();
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);

        (TokenNetwork.BalanceProof memory higher, bytes memory higherSig) = signedProof(ALICE_PK, channelId, 6, 50);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.AlreadyPenalized.selector, channelId));
        vm.prank(brandon);
        network.updateClaim(channelId, higher, higherSig, "", emptyWatch(), "");

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(i.watcher, watcher, "first watcher kept");
        assertEq(i.reward, REWARD, "reward kept");
    }

    function test_updateClaim_secondWatcherCannotOverwriteReward() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        (TokenNetwork.Watch memory other, bytes memory otherSig) = namedWatch(carol, 20, WATCH_DEADLINE);
        closeLying();
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);

        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.AlreadyPenalized.selector, channelId));
        vm.prank(carol);
        network.updateClaim(channelId, lie, lieSig, "", other, otherSig);
        // Nor the same watcher again.
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.AlreadyPenalized.selector, channelId));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);

        TokenNetwork.ChannelInfo memory i = network.channelInfo(channelId);
        assertEq(i.watcher, watcher, "first watcher kept");
        assertEq(i.reward, REWARD, "reward kept");
    }

    function test_updateClaim_revertsOnWatchForAnotherProof() public {
        (TokenNetwork.BalanceProof memory earlier,) = signedProof(ALICE_PK, channelId, 4, 30);
        TokenNetwork.Watch memory watch = watchOf(channelId, earlier, watcher, REWARD, WATCH_DEADLINE);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WatchMismatch.selector, channelId, watch.proofDigest));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnWatchForAnotherChannel() public {
        bytes32 other = idOf(brandon, carol, 1);
        TokenNetwork.Watch memory watch = watchOf(other, lie, watcher, REWARD, WATCH_DEADLINE);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WatchMismatch.selector, other, watch.proofDigest));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertNotPenalized();
    }

    function test_updateClaim_revertsForUnnamedWatcher() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WatcherNotAllowed.selector, watcher, carol));
        vm.prank(carol);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnRewardWithoutWatcher() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(address(0), REWARD, WATCH_DEADLINE);
        closeLying();
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.RewardWithoutWatcher.selector, REWARD));
        vm.prank(carol);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnWatchExpiredBeforeClose() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, START + 99);
        vm.warp(START + 100);
        closeWith(alice, channelId, emptyProof(), "", CLAIM);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WatchExpired.selector, START + 99, START + 100));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertNotPenalized();
    }

    function test_updateClaim_acceptsWatchDeadlineAtClose() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, START + 100);
        vm.warp(START + 100);
        closeWith(alice, channelId, emptyProof(), "", CLAIM);
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertEq(network.channelInfo(channelId).reward, REWARD, "accepted");
    }

    function test_updateClaim_acceptsWatchWhoseDeadlinePassedAfterClose() public {
        // The closer cannot wait out a phone's Watches: what counts is the close's time.
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, START + 10);
        closeLying();
        vm.warp(START + TIMEOUT - 1);
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, watchSig);
        assertEq(network.channelInfo(channelId).reward, REWARD, "accepted");
    }

    function test_updateClaim_revertsOnWatchSignedByCloser() public {
        TokenNetwork.Watch memory watch = watchOf(channelId, lie, watcher, REWARD, WATCH_DEADLINE);
        bytes memory byCloser = signWatch(ALICE_PK, watch);
        closeLying();
        vm.expectRevert(invalidSig(brandon));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, byCloser);
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnHighSWatch() public {
        (TokenNetwork.Watch memory watch, bytes memory watchSig) = namedWatch(watcher, REWARD, WATCH_DEADLINE);
        bytes memory high = toHighS(watchSig);
        closeLying();
        vm.expectRevert(invalidSig(brandon));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, high);
        bytes memory zero = zeroRecoverySig();
        vm.expectRevert(invalidSig(brandon));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, zero);
        vm.expectRevert(invalidSig(brandon));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, "");
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnWatchSignatureFromAnotherChannel() public {
        // brandon signed a Watch with the same fields for his channel with carol; that
        // signature must not authorize anything here.
        bytes32 other = openChannel(brandon, carol);
        TokenNetwork.Watch memory watch = watchOf(channelId, lie, watcher, REWARD, WATCH_DEADLINE);
        TokenNetwork.Watch memory otherWatch = watchOf(other, lie, watcher, REWARD, WATCH_DEADLINE);
        bytes memory otherSig = signWatch(BRANDON_PK, otherWatch);
        closeLying();
        vm.expectRevert(invalidSig(brandon));
        vm.prank(watcher);
        network.updateClaim(channelId, lie, lieSig, "", watch, otherSig);
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnProofNotSignedByCloser() public {
        // brandon forging "alice's" proof with his own key.
        (TokenNetwork.BalanceProof memory forged, bytes memory forgedSig) =
            signedProof(BRANDON_PK, channelId, 5, PROVEN);
        closeLying();
        vm.expectRevert(invalidSig(alice));
        vm.prank(brandon);
        network.updateClaim(channelId, forged, forgedSig, "", emptyWatch(), "");
        bytes memory high = toHighS(lieSig);
        vm.expectRevert(invalidSig(alice));
        vm.prank(brandon);
        network.updateClaim(channelId, lie, high, "", emptyWatch(), "");
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnMalformedProof() public {
        closeLying();
        bytes32 other = idOf(alice, brandon, 2);
        (TokenNetwork.BalanceProof memory wrongChannel, bytes memory sig1) = signedProof(ALICE_PK, other, 5, PROVEN);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ProofChannelMismatch.selector, channelId, other));
        vm.prank(brandon);
        network.updateClaim(channelId, wrongChannel, sig1, "", emptyWatch(), "");

        (TokenNetwork.BalanceProof memory nonceZero, bytes memory sig2) = signedProof(ALICE_PK, channelId, 0, PROVEN);
        vm.expectRevert(TokenNetwork.InvalidProofNonce.selector);
        vm.prank(brandon);
        network.updateClaim(channelId, nonceZero, sig2, "", emptyWatch(), "");

        TokenNetwork.BalanceProof memory locked = proofOf(channelId, 5, PROVEN);
        locked.lockedAmount = 1;
        bytes memory sig3 = signProof(ALICE_PK, locked);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.LockedAmountMismatch.selector, 1, 0));
        vm.prank(brandon);
        network.updateClaim(channelId, locked, sig3, "", emptyWatch(), "");
        assertNotPenalized();
    }

    function test_updateClaim_revertsOnOpenChannel() public {
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Open));
        vm.prank(brandon);
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");
    }

    function test_updateClaim_revertsAfterSettle() public {
        closeLying();
        vm.warp(START + TIMEOUT);
        network.settle(channelId);
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.None));
        vm.prank(brandon);
        network.updateClaim(channelId, lie, lieSig, "", emptyWatch(), "");
    }
}

// =============================================================================================
// settle
// =============================================================================================

contract TokenNetworkSettleTest is TokenNetworkTestBase {
    uint256 internal constant D_ALICE = 100;
    uint256 internal constant D_BRANDON = 50;
    uint256 internal constant TOTAL = D_ALICE + D_BRANDON;

    bytes32 internal channelId;

    function setUp() public override {
        super.setUp();
        channelId = openAndFund(D_ALICE, D_BRANDON);
    }

    function payoutsOf(uint256 toAlice, uint256 toBrandon) internal view returns (uint256 payout1, uint256 payout2) {
        (payout1, payout2) = p1 == alice ? (toAlice, toBrandon) : (toBrandon, toAlice);
    }

    function test_settle_revertsDuringHoldPeriod() public {
        closeWith(alice, channelId, emptyProof(), "", 0);
        vm.warp(START + TIMEOUT - 1);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.HoldPeriodNotOver.selector, START + TIMEOUT));
        network.settle(channelId);
        assertState(channelId, TokenNetwork.ChannelState.Closed, "still closed");
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon), 0, "nothing paid");
    }

    function test_settle_revertsOnOpenChannel() public {
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.Open));
        network.settle(channelId);
    }

    function test_settle_revertsWhenAlreadySettled() public {
        closeAndSettle(alice, channelId, 0);
        uint256 networkBefore = token.balanceOf(address(network));
        vm.expectRevert(wrongState(channelId, TokenNetwork.ChannelState.None));
        network.settle(channelId);
        assertEq(token.balanceOf(address(network)), networkBefore, "paid once");
    }

    function test_settle_honestCloseByStranger() public {
        // alice paid brandon 30 (and says so), brandon paid alice 10 (alice shows his proof).
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, channelId, 2, 10);
        closeWith(alice, channelId, proof, sig, 30);
        vm.warp(START + TIMEOUT);
        (uint256 payout1, uint256 payout2) = payoutsOf(80, 70);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelSettled(channelId, payout1, payout2, address(0), 0);
        vm.prank(stranger);
        network.settle(channelId);

        assertEq(token.balanceOf(alice), 80, "alice: 100 - 30 + 10");
        assertEq(token.balanceOf(brandon), 70, "brandon: 50 + 30 - 10");
        assertEq(token.balanceOf(stranger), 0, "settler gets nothing");
        assertEq(token.balanceOf(address(network)), networkBefore - TOTAL, "network paid the total");
        assertChannelDeleted(channelId);
        (bytes32 next, uint256 epoch) = network.currentChannel(alice, brandon);
        assertEq(epoch, 2, "epoch advanced");
        assertEq(next, idOf(alice, brandon, 2), "next id");
    }

    function test_settle_paysOfflinePartnerWithoutWatcher() public {
        // brandon never shows up: alice's own claim pays him.
        closeAndSettle(alice, channelId, 60);
        assertEq(token.balanceOf(alice), 40, "alice");
        assertEq(token.balanceOf(brandon), 110, "brandon");
    }

    function test_settle_accountsForWithdrawals() public {
        doWithdraw(ALICE_PK, BRANDON_PK, channelId, 20);
        doWithdraw(BRANDON_PK, ALICE_PK, channelId, 5);
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 1, 30);
        closeWith(brandon, channelId, proof, sig, 10);
        vm.warp(START + TIMEOUT);
        network.settle(channelId);
        // alice: 100 - 20 - 30 + 10 = 60; brandon: 125 - 60 = 65.
        assertEq(token.balanceOf(alice), 20 + 60, "alice");
        assertEq(token.balanceOf(brandon), 5 + 65, "brandon");
        assertChannelDeleted(channelId);
    }

    function test_settle_penalizedWithWatcherReward() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 5, 40);
        TokenNetwork.Watch memory watch = watchOf(channelId, proof, watcher, 7, DEADLINE);
        bytes memory watchSig = signWatch(BRANDON_PK, watch);
        closeWith(alice, channelId, emptyProof(), "", 10);
        vm.prank(watcher);
        network.updateClaim(channelId, proof, sig, "", watch, watchSig);
        vm.warp(START + TIMEOUT);
        (uint256 payout1, uint256 payout2) = payoutsOf(0, TOTAL - 7);

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelSettled(channelId, payout1, payout2, watcher, 7);
        network.settle(channelId);

        assertEq(token.balanceOf(alice), 0, "liar loses everything");
        assertEq(token.balanceOf(brandon), TOTAL - 7, "non-closer gets total - reward");
        assertEq(token.balanceOf(watcher), 7, "watcher reward");
        assertChannelDeleted(channelId);
    }

    function test_settle_penalizedRewardCappedByTotal() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(BRANDON_PK, channelId, 5, 40);
        TokenNetwork.Watch memory watch = watchOf(channelId, proof, watcher, TOTAL * 10, DEADLINE);
        bytes memory watchSig = signWatch(ALICE_PK, watch);
        closeWith(brandon, channelId, emptyProof(), "", 0);
        vm.prank(watcher);
        network.updateClaim(channelId, proof, sig, "", watch, watchSig);
        vm.warp(START + TIMEOUT);
        uint256 networkBefore = token.balanceOf(address(network));

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelSettled(channelId, 0, 0, watcher, TOTAL);
        network.settle(channelId);

        assertEq(token.balanceOf(watcher), TOTAL, "watcher gets min(reward, total)");
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon), 0, "nothing else");
        assertEq(token.balanceOf(address(network)), networkBefore - TOTAL, "no more than the total");
    }

    function test_settle_penalizedByNonCloserItself() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(ALICE_PK, channelId, 5, 40);
        closeWith(alice, channelId, emptyProof(), "", 10);
        vm.prank(brandon);
        network.updateClaim(channelId, proof, sig, "", emptyWatch(), "");
        vm.warp(START + TIMEOUT);
        network.settle(channelId);
        assertEq(token.balanceOf(alice), 0, "alice");
        assertEq(token.balanceOf(brandon), TOTAL, "brandon gets everything");
    }

    function test_settle_maxClaimCannotBlockSettle() public {
        closeAndSettle(alice, channelId, type(uint256).max);
        assertEq(token.balanceOf(alice), 0, "alice declared paying everything");
        assertEq(token.balanceOf(brandon), TOTAL, "brandon");
        assertChannelDeleted(channelId);
    }

    function test_settle_maxReceivedCannotBlockSettle() public {
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) =
            signedProof(BRANDON_PK, channelId, 1, type(uint256).max);
        closeWith(alice, channelId, proof, sig, type(uint256).max - 1);
        vm.warp(START + TIMEOUT);
        network.settle(channelId);
        // net = 1 in alice's favour: 101, clamped to nothing above the total.
        assertEq(token.balanceOf(alice), 101, "alice");
        assertEq(token.balanceOf(brandon), 49, "brandon");
    }

    function test_settle_longAfterSettleAt() public {
        closeWith(brandon, channelId, emptyProof(), "", 0);
        vm.warp(START + 365 days);
        network.settle(channelId);
        assertEq(token.balanceOf(alice), D_ALICE, "alice");
        assertEq(token.balanceOf(brandon), D_BRANDON, "brandon");
    }

    function testFuzz_settle_neverRevertsAndPaysExactlyTotal(
        uint256 claim,
        uint256 received,
        bool aliceCloses,
        bool small
    ) public {
        // Half the runs keep the amounts near the channel's size, where the split is not clamped.
        claim = small ? bound(claim, 0, 2 * TOTAL) : bound(claim, 0, type(uint256).max);
        received = small ? bound(received, 1, 2 * TOTAL) : bound(received, 1, type(uint256).max);
        (address closer, uint256 partnerPk) = aliceCloses ? (alice, BRANDON_PK) : (brandon, ALICE_PK);
        (TokenNetwork.BalanceProof memory proof, bytes memory sig) = signedProof(partnerPk, channelId, 1, received);
        closeWith(closer, channelId, proof, sig, claim);
        vm.warp(START + TIMEOUT);
        uint256 networkBefore = token.balanceOf(address(network));
        network.settle(channelId);
        // alice's share: D_ALICE + what she received - what she paid, clamped to [0, TOTAL].
        (uint256 alicePaid, uint256 aliceGot) = aliceCloses ? (claim, received) : (received, claim);
        uint256 expectedAlice;
        if (aliceGot >= alicePaid) {
            expectedAlice = aliceGot - alicePaid >= TOTAL - D_ALICE ? TOTAL : D_ALICE + (aliceGot - alicePaid);
        } else {
            expectedAlice = alicePaid - aliceGot >= D_ALICE ? 0 : D_ALICE - (alicePaid - aliceGot);
        }
        assertEq(token.balanceOf(alice), expectedAlice, "alice's clamped off-chain balance");
        assertEq(token.balanceOf(alice) + token.balanceOf(brandon), TOTAL, "payouts sum to the total");
        assertEq(token.balanceOf(address(network)), networkBefore - TOTAL, "network paid the total");
        assertChannelDeleted(channelId);
    }
}
