// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Fixture} from "./utils/Fixture.sol";
import {SignedAgent} from "../src/SignedAgent.sol";
import {SmartMeshToken} from "../src/SmartMeshToken.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {SignatureRules} from "../src/libraries/SignatureRules.sol";

/// @notice A target that trusts the agent and whose work needs a known amount of gas, to show
/// what a relayer sending too little gas can and cannot do.
contract GasHungryTarget {
    address private immutable _forwarder;
    uint256 public completed;

    constructor(address forwarder) {
        _forwarder = forwarder;
    }

    function isTrustedForwarder(address forwarder) external view returns (bool) {
        return forwarder == _forwarder;
    }

    /// @dev Burns `amount` gas, then records the work as done.
    function work(uint256 amount) public returns (uint256) {
        uint256 start = gasleft();
        while (start - gasleft() < amount) {}
        completed += 1;
        return completed;
    }

    /// @dev Reports starvation instead of reverting: the kind of target whose outcome depends on
    /// the gas it gets, and that a starved call would leave "successful".
    function tryWork(uint256 amount) external returns (bool done) {
        try this.work(amount) {
            return true;
        } catch {
            return false;
        }
    }
}

/// @notice A contract that knows nothing of ERC-2771.
contract PlainContract {
    uint256 public value;

    function set(uint256 newValue) external {
        value = newValue;
    }
}

/// @notice A trusting target that calls back into the agent.
contract ReentrantTarget {
    SignedAgent private immutable _agent;

    constructor(SignedAgent agent) {
        _agent = agent;
    }

    function isTrustedForwarder(address forwarder) external view returns (bool) {
        return forwarder == address(_agent);
    }

    function reenter(SignedAgent.AgentRequest calldata request, bytes calldata signature) external {
        _agent.execute(request, signature);
    }
}

abstract contract AgentTestBase is Fixture {
    uint256 internal constant FEE = 2 ether;
    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant AGENT_REQUEST_TYPEHASH = keccak256(
        "AgentRequest(address from,address agent,address target,bytes data,uint256 gas,address feeToken,uint256 fee,uint256 nonce,uint256 deadline)"
    );
    bytes32 internal constant CANCEL_REQUEST_TYPEHASH = keccak256("CancelRequest(address from,uint256 nonce)");

    function relay(SignedAgent.AgentRequest memory request, bytes memory sig) internal returns (bytes memory) {
        vm.prank(relayer);
        return agent.execute(request, sig);
    }

    function signedRequest(uint256 pk, address target, bytes memory data, uint256 fee, uint256 nonce)
        internal
        view
        returns (SignedAgent.AgentRequest memory request, bytes memory sig)
    {
        request = requestOf(pk, target, data, fee, nonce);
        sig = signRequest(pk, request);
    }

    function transferRequest(uint256 pk, address to, uint256 value, uint256 fee, uint256 nonce)
        internal
        view
        returns (SignedAgent.AgentRequest memory request, bytes memory sig)
    {
        return signedRequest(pk, address(token), abi.encodeCall(token.transfer, (to, value)), fee, nonce);
    }

    /// @dev Built from the EIP-712 definitions, not read from the agent, so a wrong domain or
    /// type hash in the contract cannot cancel out.
    function agentDomain(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH, keccak256("SmartMesh SignedAgent"), keccak256("1"), chainId, verifyingContract
            )
        );
    }

    function requestDigest(bytes32 domainSeparator, SignedAgent.AgentRequest memory request)
        internal
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                AGENT_REQUEST_TYPEHASH,
                request.from,
                request.agent,
                request.target,
                keccak256(request.data),
                request.gas,
                request.feeToken,
                request.fee,
                request.nonce,
                request.deadline
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function copy(SignedAgent.AgentRequest memory request) internal pure returns (SignedAgent.AgentRequest memory) {
        return SignedAgent.AgentRequest({
            from: request.from,
            agent: request.agent,
            target: request.target,
            data: request.data,
            gas: request.gas,
            feeToken: request.feeToken,
            fee: request.fee,
            nonce: request.nonce,
            deadline: request.deadline
        });
    }
}

contract SignedAgentExecuteTest is AgentTestBase {
    function setUp() public override {
        super.setUp();
        fund(alice, 100 ether);
    }

    function test_execute_relaysTransferAndPaysRelayer() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 10 ether, FEE, 7);

        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, carol, 10 ether);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, relayer, FEE);
        vm.expectEmit(address(agent));
        emit SignedAgent.RequestExecuted(alice, 7, relayer, address(token), FEE);
        bytes memory result = relay(request, sig);

        vm.assertEq(result, abi.encode(true), "transfer's return data");
        assertEq(token.balanceOf(alice), 100 ether - 10 ether - FEE, "alice");
        assertEq(token.balanceOf(carol), 10 ether, "carol");
        assertEq(token.balanceOf(relayer), FEE, "relayer fee");
        assertEq(token.balanceOf(address(agent)), 0, "agent keeps nothing");
        assertTrue(agent.nonceUsed(alice, 7), "nonce used");
        assertFalse(agent.nonceUsed(alice, 6), "other nonce");
        assertFalse(agent.nonceUsed(brandon, 7), "other user");
    }

    function test_execute_paysFeeToWhoeverSubmits() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 1 ether, FEE, 1);
        vm.prank(watcher);
        agent.execute(request, sig);
        assertEq(token.balanceOf(watcher), FEE, "submitter paid");
        assertEq(token.balanceOf(relayer), 0, "relayer not");
    }

    function test_execute_returnsTargetReturnData() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(ALICE_PK, address(network), abi.encodeCall(network.open, (brandon, TIMEOUT)), FEE, 1);
        bytes32 channelId = abi.decode(relay(request, sig), (bytes32));

        (bytes32 expected,) = network.currentChannel(alice, brandon);
        assertEq(channelId, expected, "channel id returned");
        assertEq(uint256(info(channelId).state), uint256(TokenNetwork.ChannelState.Open), "opened by alice");
    }

    function test_execute_innerFailureRevertsWithReasonAndChargesNothing() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(ALICE_PK, address(network), abi.encodeCall(network.open, (brandon, 1)), FEE, 1);

        bytes memory reason =
            abi.encodeWithSelector(TokenNetwork.InvalidSettleTimeout.selector, 1, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.CallFailed.selector, reason));
        relay(request, sig);

        assertEq(token.balanceOf(alice), 100 ether, "no fee charged");
        assertEq(token.balanceOf(relayer), 0, "relayer unpaid");
        assertFalse(agent.nonceUsed(alice, 1), "nonce still usable");
        (bytes32 channelId,) = network.currentChannel(alice, brandon);
        assertEq(uint256(info(channelId).state), uint256(TokenNetwork.ChannelState.None), "no channel");
    }

    function test_execute_innerFailureOfTokenCall() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 101 ether, 0, 1);
        bytes memory reason =
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100 ether, 101 ether);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.CallFailed.selector, reason));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
    }

    function test_execute_revertsAfterDeadline() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 1 ether, FEE, 1);
        uint256 snapshot = vm.snapshotState();
        // The deadline itself is still valid.
        vm.warp(request.deadline);
        relay(request, sig);
        assertEq(token.balanceOf(carol), 1 ether, "valid at the deadline");
        vm.revertToState(snapshot);

        vm.warp(request.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.RequestExpired.selector, request.deadline));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
    }

    function test_execute_revertsForOtherAgent() public {
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (carol, 1 ether)), FEE, 1);
        request.agent = relayer;
        bytes memory sig = signRequest(ALICE_PK, request);

        // Watching the mempool, carol copies the request and submits it first.
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.AgentNotAllowed.selector, relayer, carol));
        agent.execute(request, sig);
        assertEq(token.balanceOf(carol), 0, "carol got neither payment nor fee");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");

        relay(request, sig);
        assertEq(token.balanceOf(relayer), FEE, "the named relayer is paid");
        assertEq(token.balanceOf(carol), 1 ether, "payment made");
    }

    function test_execute_revertsForTargetAgentItself() public {
        expectInvalidTarget(address(agent));
    }

    function test_execute_revertsForTargetWithoutCode() public {
        expectInvalidTarget(carol);
        expectInvalidTarget(address(0));
    }

    function test_execute_revertsForTargetTrustingAnotherForwarder() public {
        TokenNetwork otherNetwork = new TokenNetwork(token, address(0xBEEF), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        expectInvalidTarget(address(otherNetwork));
        SmartMeshToken otherToken = new SmartMeshToken(alice, 1 ether, address(new SignedAgent()));
        expectInvalidTarget(address(otherToken));
    }

    function test_execute_revertsForPlainContractTarget() public {
        expectInvalidTarget(address(new PlainContract()));
        // Another agent has code but no `isTrustedForwarder`.
        expectInvalidTarget(address(new SignedAgent()));
    }

    function test_execute_revertsForUntrustingFeeToken() public {
        SmartMeshToken otherToken = new SmartMeshToken(alice, 1_000 ether, address(0xBEEF));
        expectInvalidFeeToken(address(otherToken));
        expectInvalidFeeToken(carol);
        expectInvalidFeeToken(address(0));
        expectInvalidFeeToken(address(agent));
        assertEq(otherToken.balanceOf(alice), 1_000 ether, "other token untouched");
    }

    function test_execute_zeroFeeNeedsNoFeeToken() public {
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (carol, 1 ether)), 0, 1);
        request.feeToken = address(0);
        bytes memory sig = signRequest(ALICE_PK, request);

        vm.expectEmit(address(agent));
        emit SignedAgent.RequestExecuted(alice, 1, relayer, address(token), 0);
        relay(request, sig);

        assertEq(token.balanceOf(alice), 99 ether, "alice paid carol only");
        assertEq(token.balanceOf(carol), 1 ether, "carol");
        assertEq(token.balanceOf(relayer), 0, "no fee");
        assertTrue(agent.nonceUsed(alice, 1), "nonce used");
    }

    function test_execute_zeroFeeInUntrustingTokenIsFine() public {
        SmartMeshToken otherToken = new SmartMeshToken(alice, 1_000 ether, address(0xBEEF));
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (carol, 1 ether)), 0, 1);
        request.feeToken = address(otherToken);
        relay(request, signRequest(ALICE_PK, request));
        assertEq(otherToken.balanceOf(alice), 1_000 ether, "nothing charged");
        assertEq(token.balanceOf(carol), 1 ether, "carol");
    }

    function test_execute_revertsWhenFeeUnaffordable() public {
        // Brandon has no SMT at all; the inner call (an open) needs none, only the fee fails.
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(BRANDON_PK, address(network), abi.encodeCall(network.open, (alice, TIMEOUT)), FEE, 1);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.FeePaymentFailed.selector, address(token), brandon, FEE));
        relay(request, sig);

        assertFalse(agent.nonceUsed(brandon, 1), "nonce unused");
        (bytes32 channelId,) = network.currentChannel(alice, brandon);
        assertEq(uint256(info(channelId).state), uint256(TokenNetwork.ChannelState.None), "open undone");
        assertEq(token.balanceOf(relayer), 0, "relayer unpaid");
    }

    function test_execute_revertsWhenFeeExceedsBalanceAfterCall() public {
        // Alice can afford the transfer or the fee, not both.
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 99 ether, FEE, 1);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.FeePaymentFailed.selector, address(token), alice, FEE));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "transfer undone");
        assertEq(token.balanceOf(carol), 0, "carol");
    }

    function test_execute_reentryFails() public {
        ReentrantTarget reentrant = new ReentrantTarget(agent);
        (SignedAgent.AgentRequest memory inner, bytes memory innerSig) = transferRequest(ALICE_PK, carol, 1 ether, 0, 2);
        (SignedAgent.AgentRequest memory outer, bytes memory outerSig) =
            signedRequest(ALICE_PK, address(reentrant), abi.encodeCall(reentrant.reenter, (inner, innerSig)), FEE, 1);

        bytes memory reason = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.CallFailed.selector, reason));
        relay(outer, outerSig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertFalse(agent.nonceUsed(alice, 1), "outer nonce unused");
        assertFalse(agent.nonceUsed(alice, 2), "inner nonce unused");
    }

    function expectInvalidTarget(address target) internal {
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(ALICE_PK, target, abi.encodeCall(token.transfer, (carol, 1 ether)), FEE, 1);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.InvalidTarget.selector, target));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertEq(token.balanceOf(relayer), 0, "relayer");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
    }

    function expectInvalidFeeToken(address feeToken) internal {
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (carol, 1 ether)), FEE, 1);
        request.feeToken = feeToken;
        bytes memory sig = signRequest(ALICE_PK, request);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.InvalidFeeToken.selector, feeToken));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertEq(token.balanceOf(carol), 0, "carol");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
    }
}

/// @notice A user with SMT but no ETH runs a channel's whole life through a relayer.
contract SignedAgentGaslessTest is AgentTestBase {
    uint256 internal constant ALICE_FUNDS = 1_000 ether;
    uint256 internal constant ALICE_DEPOSIT = 400 ether;
    uint256 internal constant BRANDON_DEPOSIT = 100 ether;

    function setUp() public override {
        super.setUp();
        fund(alice, ALICE_FUNDS);
        vm.deal(alice, 0);
    }

    function test_gasless_openDepositWithPermitCooperativeSettle() public {
        bytes32 channelId = gaslessOpenAndDeposit();
        depositFor(channelId, brandon, BRANDON_DEPOSIT);

        // Alice ends with 350, brandon with 150 of the 500 the channel holds.
        (uint256 balance1, uint256 balance2) = alice < brandon ? (350 ether, 150 ether) : (150 ether, 350 ether);
        (uint256 pk1, uint256 pk2) = alice < brandon ? (ALICE_PK, BRANDON_PK) : (BRANDON_PK, ALICE_PK);
        uint256 deadline = vm.getBlockTimestamp() + 1 hours;
        bytes memory sig1 = signCooperativeSettle(pk1, channelId, balance1, balance2, deadline);
        bytes memory sig2 = signCooperativeSettle(pk2, channelId, balance1, balance2, deadline);
        (SignedAgent.AgentRequest memory request, bytes memory sig) = signedRequest(
            ALICE_PK,
            address(network),
            abi.encodeCall(network.cooperativeSettle, (channelId, balance1, balance2, deadline, sig1, sig2)),
            FEE,
            3
        );

        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelCooperativelySettled(channelId, balance1, balance2);
        relay(request, sig);

        assertEq(uint256(info(channelId).state), uint256(TokenNetwork.ChannelState.None), "channel gone");
        assertEq(token.balanceOf(alice), ALICE_FUNDS - ALICE_DEPOSIT - 3 * FEE + 350 ether, "alice");
        assertEq(token.balanceOf(brandon), 150 ether, "brandon");
        assertEq(token.balanceOf(relayer), 3 * FEE, "relayer got exactly the fees");
        assertEq(token.balanceOf(address(network)), 0, "network empty");
        assertEq(token.balanceOf(address(agent)), 0, "agent keeps nothing");
        assertEq(token.totalSupply(), SUPPLY, "supply");
        assertEq(alice.balance, 0, "alice never needed ETH");
        for (uint256 nonce = 1; nonce <= 3; ++nonce) {
            assertTrue(agent.nonceUsed(alice, nonce), "nonce used");
        }
    }

    function test_gasless_openDepositWithPermitClose() public {
        bytes32 channelId = gaslessOpenAndDeposit();
        depositFor(channelId, brandon, BRANDON_DEPOSIT);

        // Off chain, brandon paid alice 30 and alice paid brandon 10; alice closes on that.
        (TokenNetwork.BalanceProof memory proof, bytes memory proofSig) =
            signedProof(BRANDON_PK, channelId, 3, 30 ether);
        (SignedAgent.AgentRequest memory request, bytes memory sig) = signedRequest(
            ALICE_PK, address(network), abi.encodeCall(network.close, (channelId, proof, proofSig, "", 10 ether, "")), FEE, 3
        );
        relay(request, sig);

        TokenNetwork.ChannelInfo memory closed = info(channelId);
        assertEq(uint256(closed.state), uint256(TokenNetwork.ChannelState.Closed), "closed");
        assertEq(closed.closer, alice, "alice is the closer, not the agent or relayer");
        assertEq(closed.claimTransferred, 10 ether, "claim");
        assertEq(closed.closerReceived, 30 ether, "received");
        assertEq(closed.settleAt, vm.getBlockTimestamp() + TIMEOUT, "settleAt");

        vm.warp(closed.settleAt);
        vm.prank(relayer);
        network.settle(channelId);

        assertEq(token.balanceOf(alice), ALICE_FUNDS - ALICE_DEPOSIT - 3 * FEE + 420 ether, "alice: 400 + 30 - 10");
        assertEq(token.balanceOf(brandon), 80 ether, "brandon: 100 - 30 + 10");
        assertEq(token.balanceOf(relayer), 3 * FEE, "relayer got exactly the fees");
        assertEq(token.balanceOf(address(network)), 0, "network empty");
        assertEq(token.totalSupply(), SUPPLY, "supply");
        assertEq(alice.balance, 0, "alice never needed ETH");
    }

    function test_gasless_depositWithPermitFailsWithoutAllowanceWhenPermitIsBad() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(ALICE_PK, address(network), abi.encodeCall(network.open, (brandon, TIMEOUT)), FEE, 1);
        bytes32 channelId = abi.decode(relay(request, sig), (bytes32));

        // A permit brandon signed is no permit of alice's: the swallowed permit leaves no
        // allowance, so the deposit itself fails and alice pays no fee.
        uint256 permitDeadline = vm.getBlockTimestamp() + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(BRANDON_PK, address(network), ALICE_DEPOSIT, permitDeadline);
        (request, sig) = signedRequest(
            ALICE_PK,
            address(network),
            abi.encodeCall(
                network.depositWithPermit, (channelId, alice, ALICE_DEPOSIT, ALICE_DEPOSIT, permitDeadline, v, r, s)
            ),
            FEE,
            2
        );
        bytes memory reason = abi.encodeWithSelector(
            IERC20Errors.ERC20InsufficientAllowance.selector, address(network), 0, ALICE_DEPOSIT
        );
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.CallFailed.selector, reason));
        relay(request, sig);
        assertEq(token.balanceOf(alice), ALICE_FUNDS - FEE, "only the open's fee");
        assertFalse(agent.nonceUsed(alice, 2), "nonce unused");
    }

    /// @dev Relays alice's open (nonce 1) and her permit-funded deposit (nonce 2).
    function gaslessOpenAndDeposit() internal returns (bytes32 channelId) {
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            signedRequest(ALICE_PK, address(network), abi.encodeCall(network.open, (brandon, TIMEOUT)), FEE, 1);
        channelId = abi.decode(relay(request, sig), (bytes32));

        TokenNetwork.ChannelInfo memory opened = info(channelId);
        assertEq(uint256(opened.state), uint256(TokenNetwork.ChannelState.Open), "open");
        (address p1, address p2) = alice < brandon ? (alice, brandon) : (brandon, alice);
        assertEq(opened.participant1, p1, "participant1");
        assertEq(opened.participant2, p2, "participant2");
        assertEq(opened.settleTimeout, TIMEOUT, "timeout");
        assertEq(token.balanceOf(alice), ALICE_FUNDS - FEE, "open's fee");

        uint256 permitDeadline = vm.getBlockTimestamp() + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, address(network), ALICE_DEPOSIT, permitDeadline);
        (request, sig) = signedRequest(
            ALICE_PK,
            address(network),
            abi.encodeCall(
                network.depositWithPermit, (channelId, alice, ALICE_DEPOSIT, ALICE_DEPOSIT, permitDeadline, v, r, s)
            ),
            FEE,
            2
        );
        vm.expectEmit(address(network));
        emit TokenNetwork.ChannelDeposited(channelId, alice, ALICE_DEPOSIT);
        relay(request, sig);

        (uint256 deposited,) = network.participantInfo(channelId, alice);
        assertEq(deposited, ALICE_DEPOSIT, "alice's deposit");
        assertEq(token.nonces(alice), 1, "permit used");
        assertEq(token.allowance(alice, address(network)), 0, "allowance spent");
        assertEq(token.balanceOf(address(network)), ALICE_DEPOSIT, "network holds it");
        assertEq(token.balanceOf(alice), ALICE_FUNDS - ALICE_DEPOSIT - 2 * FEE, "deposit and two fees");
        assertEq(token.balanceOf(relayer), 2 * FEE, "two fees");
    }
}

/// @notice Every way a request signature can be wrong is refused with `InvalidSignature(from)`,
/// moves nothing and leaves the nonce usable.
contract SignedAgentSignatureTest is AgentTestBase {
    SignedAgent.AgentRequest internal request;

    function setUp() public override {
        super.setUp();
        fund(alice, 100 ether);
        (SignedAgent.AgentRequest memory built,) = transferRequest(ALICE_PK, carol, 1 ether, FEE, 1);
        request = built;
    }

    function test_execute_acceptsTheGenuineSignature() public {
        // The baseline every rejection below departs from by one thing.
        relay(request, signRequest(ALICE_PK, request));
        assertEq(token.balanceOf(carol), 1 ether, "carol");
        assertEq(
            requestDigest(agentDomain(block.chainid, address(agent)), request), agent.hashRequest(request), "digest"
        );
        assertEq(agent.DOMAIN_SEPARATOR(), agentDomain(block.chainid, address(agent)), "domain separator");
        assertEq(agent.AGENT_REQUEST_TYPEHASH(), AGENT_REQUEST_TYPEHASH, "type hash");
    }

    function test_execute_revertsForWrongSigner() public {
        expectRejected(request, signRequest(BRANDON_PK, request));
    }

    function test_execute_revertsForHighS() public {
        expectRejected(request, toHighS(signRequest(ALICE_PK, request)));
    }

    function test_execute_revertsForZeroRecovery() public {
        expectRejected(request, zeroRecoverySig());
        // The dangerous pairing: a request "from" the zero address with a signature that
        // recovers to it.
        SignedAgent.AgentRequest memory fromZero = copy(request);
        fromZero.from = address(0);
        expectRejected(fromZero, zeroRecoverySig());
    }

    function test_execute_revertsForMalformedSignature() public {
        bytes memory sig = signRequest(ALICE_PK, request);
        (bytes32 r, bytes32 s, uint8 v) = splitSig(sig);
        // 65 bytes only: an ERC-2098 compact form would be a second encoding of one signature.
        expectRejected(request, abi.encodePacked(r, s));
        expectRejected(request, abi.encodePacked(sig, uint8(0)));
        expectRejected(request, abi.encodePacked(r, s, v + 2));
        expectRejected(request, "");
    }

    function test_execute_revertsForAnyChangedField() public {
        bytes memory sig = signRequest(ALICE_PK, request);
        for (uint256 field; field < 9; ++field) {
            expectRejected(changed(request, field), sig);
        }
    }

    function test_execute_revertsForOtherChain() public {
        bytes memory sig = signDigest(ALICE_PK, requestDigest(agentDomain(block.chainid + 1, address(agent)), request));
        expectRejected(request, sig);
    }

    function test_execute_revertsForOtherVerifyingContract() public {
        SignedAgent twin = new SignedAgent();
        assertEq(twin.DOMAIN_SEPARATOR(), agentDomain(block.chainid, address(twin)), "twin's domain");
        bytes memory sig = signDigest(ALICE_PK, requestDigest(agentDomain(block.chainid, address(twin)), request));
        expectRejected(request, sig);
        // And the same request signed for the token, which shares the chain but not the name.
        sig = signDigest(ALICE_PK, requestDigest(token.DOMAIN_SEPARATOR(), request));
        expectRejected(request, sig);
    }

    function test_execute_revertsAfterChainFork() public {
        SignedAgent.AgentRequest memory signed = copy(request);
        bytes memory sig = signRequest(ALICE_PK, signed);
        vm.chainId(block.chainid + 1);
        expectRejected(signed, sig);
    }

    /// @dev A copy of `original` with one field changed, in a way that passes every check that
    /// runs before the signature's, so only the signature can refuse it.
    function changed(SignedAgent.AgentRequest memory original, uint256 field)
        internal
        view
        returns (SignedAgent.AgentRequest memory modified)
    {
        modified = copy(original);
        if (field == 0) modified.from = brandon;
        else if (field == 1) modified.agent = relayer;
        else if (field == 2) modified.target = address(network);
        else if (field == 3) modified.data = abi.encodeCall(token.transfer, (carol, 2 ether));
        else if (field == 4) modified.gas += 1;
        else if (field == 5) modified.feeToken = address(network);
        else if (field == 6) modified.fee += 1;
        else if (field == 7) modified.nonce += 1;
        else modified.deadline += 1;
    }

    function expectRejected(SignedAgent.AgentRequest memory submitted, bytes memory sig) internal {
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, submitted.from));
        relay(submitted, sig);
        assertEq(token.balanceOf(alice), 100 ether, "alice");
        assertEq(token.balanceOf(carol), 0, "carol");
        assertEq(token.balanceOf(relayer), 0, "relayer");
        assertFalse(agent.nonceUsed(submitted.from, submitted.nonce), "nonce unused");
    }
}

contract SignedAgentNonceTest is AgentTestBase {
    function setUp() public override {
        super.setUp();
        fund(alice, 100 ether);
    }

    function test_execute_unorderedNonces() public {
        uint256[4] memory nonces = [uint256(300), 5, 2 ** 200, 1];
        bytes[4] memory sigs;
        SignedAgent.AgentRequest[4] memory requests;
        for (uint256 i; i < 4; ++i) {
            (requests[i], sigs[i]) = transferRequest(ALICE_PK, carol, 1 ether, 0, nonces[i]);
        }

        for (uint256 i; i < 4; ++i) {
            for (uint256 j = i; j < 4; ++j) {
                assertFalse(agent.nonceUsed(alice, nonces[j]), "later nonces unused");
            }
            relay(requests[i], sigs[i]);
            for (uint256 j; j <= i; ++j) {
                assertTrue(agent.nonceUsed(alice, nonces[j]), "earlier nonces used");
            }
        }
        assertEq(token.balanceOf(carol), 4 ether, "all four paid");

        // Neighbours in the same bitmap word, and the same bit in other words, stay free.
        uint256[7] memory untouched = [uint256(0), 2, 4, 6, 261, 2 ** 200 + 1, 2 ** 200 - 256];
        for (uint256 i; i < 7; ++i) {
            assertFalse(agent.nonceUsed(alice, untouched[i]), "untouched nonce");
        }

        for (uint256 i; i < 4; ++i) {
            vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, nonces[i]));
            relay(requests[i], sigs[i]);
        }
        assertEq(token.balanceOf(carol), 4 ether, "each paid once");
    }

    function testFuzz_execute_anyTwoNoncesAnyOrder(uint256 first, uint256 second) public {
        vm.assume(first != second);
        (SignedAgent.AgentRequest memory a, bytes memory sigA) = transferRequest(ALICE_PK, carol, 1 ether, 0, first);
        (SignedAgent.AgentRequest memory b, bytes memory sigB) = transferRequest(ALICE_PK, carol, 2 ether, 0, second);

        relay(b, sigB);
        assertFalse(agent.nonceUsed(alice, first), "first still free");
        relay(a, sigA);
        assertTrue(agent.nonceUsed(alice, first) && agent.nonceUsed(alice, second), "both used");
        assertFalse(agent.nonceUsed(brandon, first) || agent.nonceUsed(brandon, second), "per user");

        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, first));
        relay(a, sigA);
        assertEq(token.balanceOf(carol), 3 ether, "paid once each");
    }

    function test_cancel_burnsNonce() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 1 ether, FEE, 9);

        vm.expectEmit(address(agent));
        emit SignedAgent.RequestCanceled(alice, 9);
        vm.prank(alice);
        agent.cancel(9);

        assertTrue(agent.nonceUsed(alice, 9), "burnt");
        assertFalse(agent.nonceUsed(brandon, 9), "only alice's");
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, 9));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "request never ran");

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, 9));
        agent.cancel(9);
    }

    function test_cancel_revertsForUsedNonce() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 1 ether, 0, 4);
        relay(request, sig);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, 4));
        agent.cancel(4);
    }

    function test_cancelWithSig_burnsNonce() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = transferRequest(ALICE_PK, carol, 1 ether, FEE, 9);
        bytes32 digest = cancelDigest(agentDomain(block.chainid, address(agent)), alice, 9);
        assertEq(agent.hashCancel(alice, 9), digest, "cancel digest");
        bytes memory cancelSig = signDigest(ALICE_PK, digest);

        vm.expectEmit(address(agent));
        emit SignedAgent.RequestCanceled(alice, 9);
        vm.prank(relayer);
        agent.cancelWithSig(alice, 9, cancelSig);

        assertTrue(agent.nonceUsed(alice, 9), "burnt");
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, 9));
        relay(request, sig);
        assertEq(token.balanceOf(alice), 100 ether, "request never ran");

        vm.expectRevert(abi.encodeWithSelector(SignedAgent.NonceAlreadyUsed.selector, alice, 9));
        agent.cancelWithSig(alice, 9, cancelSig);
    }

    function test_cancelWithSig_revertsForBadSignature() public {
        bytes32 digest = agent.hashCancel(alice, 9);
        expectCancelRejected(alice, 9, signDigest(BRANDON_PK, digest));
        expectCancelRejected(alice, 9, toHighS(signDigest(ALICE_PK, digest)));
        expectCancelRejected(alice, 9, zeroRecoverySig());
        expectCancelRejected(address(0), 9, zeroRecoverySig());
        // Signed for another nonce, another chain, another agent.
        expectCancelRejected(alice, 9, signDigest(ALICE_PK, agent.hashCancel(alice, 10)));
        expectCancelRejected(
            alice, 9, signDigest(ALICE_PK, cancelDigest(agentDomain(block.chainid + 1, address(agent)), alice, 9))
        );
        expectCancelRejected(
            alice, 9, signDigest(ALICE_PK, cancelDigest(agentDomain(block.chainid, address(0xA6E27)), alice, 9))
        );
        // A request signature is not a cancel signature.
        (, bytes memory requestSig) = transferRequest(ALICE_PK, carol, 1 ether, 0, 9);
        expectCancelRejected(alice, 9, requestSig);
    }

    function expectCancelRejected(address from, uint256 nonce, bytes memory sig) internal {
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, from));
        agent.cancelWithSig(from, nonce, sig);
        assertFalse(agent.nonceUsed(from, nonce), "nonce unused");
    }

    function cancelDigest(bytes32 domainSeparator, address from, uint256 nonce) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked("\x19\x01", domainSeparator, keccak256(abi.encode(CANCEL_REQUEST_TYPEHASH, from, nonce)))
        );
    }
}

/// @notice EIP-150 gives a callee at most 63/64 of the gas left, so a relayer could send just
/// too little for `request.gas` and starve the inner call. The agent must then revert as a
/// whole: no fee, nonce still usable.
contract SignedAgentGasTest is AgentTestBase {
    uint256 internal constant REQUEST_GAS = 1_000_000;
    uint256 internal constant WORK = 900_000;
    /// @dev Comfortably above `REQUEST_GAS * 64 / 63` plus the agent's own checks and fee.
    uint256 internal constant AMPLE = 1_300_000;

    GasHungryTarget internal hungry;

    function setUp() public override {
        super.setUp();
        hungry = new GasHungryTarget(address(agent));
        fund(alice, 100 ether);
    }

    function test_execute_starvedCallRevertsWhole() public {
        (SignedAgent.AgentRequest memory request, bytes memory sig) = hungryRequest(abi.encodeCall(hungry.work, (WORK)));

        (bool success, bytes memory returned) = relayWithGas(request, sig, 500_000);
        assertFalse(success, "starved relay must fail");
        // The agent's own gas check fired before the call, not a CallFailed after the fact.
        assertInsufficientGas(returned);
        assertNothingHappened();

        (success,) = relayWithGas(request, sig, AMPLE);
        assertTrue(success, "same request with enough gas");
        assertEq(hungry.completed(), 1, "work done");
        assertEq(token.balanceOf(relayer), FEE, "fee paid");
        assertTrue(agent.nonceUsed(alice, 1), "nonce used");
    }

    function test_execute_starvedCallThatSwallowsOutOfGasRevertsWhole() public {
        // The target catches its own out-of-gas and returns normally: without the agent's
        // check, the relayer would collect its fee for work that was never done.
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            hungryRequest(abi.encodeCall(hungry.tryWork, (WORK)));

        (bool success, bytes memory returned) = relayWithGas(request, sig, 300_000);
        assertFalse(success, "starved relay must fail");
        assertInsufficientGas(returned);
        assertNothingHappened();

        (success, returned) = relayWithGas(request, sig, AMPLE);
        assertTrue(success, "same request with enough gas");
        assertTrue(abi.decode(abi.decode(returned, (bytes)), (bool)), "tryWork did the work");
        assertEq(hungry.completed(), 1, "work done");
    }

    /// @dev Just short of `REQUEST_GAS * 64 / 63`, the starved callee hands its unused 1/64
    /// back to the agent, so a check made only after the call, `gasleft() > gas / 63` (which
    /// assumes a starved call used up everything it got), passes. A relayer that already holds
    /// SMT (its fee then costs 5k gas, not 22k) would collect its fee and burn the nonce for
    /// work that was never done. Only a check before the call, that 63/64 of the gas left
    /// covers `request.gas`, refuses this relay.
    /// @dev The gas limits tried are found, not guessed: `lowest` is the smallest limit the agent
    /// accepts. Every limit within `REQUEST_GAS / 63 + 10_000` (the agent's margin, ~25.9k) below
    /// it leaves the agent more than `request.gas` at its check, so only the 63/64 rule refuses
    /// it; a fixed limit far below (say 800k) would only show that `gas > gasleft()` is refused.
    function test_execute_barelyStarvedCallThatSwallowsOutOfGasRevertsWhole() public {
        fund(relayer, 1 ether);
        (SignedAgent.AgentRequest memory request, bytes memory sig) =
            hungryRequest(abi.encodeCall(hungry.tryWork, (WORK)));
        uint256 lowest = lowestAcceptedGas(request, sig);

        // 1 below the threshold; 10_001 below, where the agent's check sees REQUEST_GAS * 64 / 63
        // - 1 (the margin is 10_000); 20k below, where it still sees more than REQUEST_GAS.
        uint256[3] memory limits = [lowest - 1, lowest - 10_001, lowest - 20_000];
        for (uint256 i; i < limits.length; ++i) {
            (bool success, bytes memory returned) = relayWithGas(request, sig, limits[i]);
            bool done = success && abi.decode(abi.decode(returned, (bytes)), (bool));
            assertFalse(success && !done, "relayer paid for starved work");
            assertFalse(success, "starved relay must fail");
            assertInsufficientGas(returned);
            assertEq(hungry.completed(), 0, "no work recorded");
            assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
            assertEq(token.balanceOf(alice), 100 ether, "alice charged nothing");
            assertEq(token.balanceOf(relayer), 1 ether, "relayer unpaid");
        }

        // At the threshold itself the work is done in full and paid for.
        (bool ok, bytes memory result) = relayWithGas(request, sig, lowest);
        assertTrue(ok, "accepted at the threshold");
        assertTrue(abi.decode(abi.decode(result, (bytes)), (bool)), "tryWork did the work");
        assertEq(hungry.completed(), 1, "work done");
        assertEq(token.balanceOf(relayer), 1 ether + FEE, "fee paid");
    }

    /// @dev Whatever gas the relayer sends, either the work is done and paid for, or nothing
    /// happens at all.
    function testFuzz_execute_neverPaysForStarvedWork(uint256 gasLimit) public {
        gasLimit = bound(gasLimit, 60_000, AMPLE);
        (SignedAgent.AgentRequest memory request, bytes memory sig) = hungryRequest(abi.encodeCall(hungry.work, (WORK)));

        (bool success,) = relayWithGas(request, sig, gasLimit);
        if (success) {
            assertEq(hungry.completed(), 1, "paid work was done");
            assertEq(token.balanceOf(relayer), FEE, "fee");
            assertTrue(agent.nonceUsed(alice, 1), "nonce used");
        } else {
            assertNothingHappened();
        }
    }

    function hungryRequest(bytes memory data)
        internal
        view
        returns (SignedAgent.AgentRequest memory request, bytes memory sig)
    {
        request = requestOf(ALICE_PK, address(hungry), data, FEE, 1);
        request.gas = REQUEST_GAS;
        sig = signRequest(ALICE_PK, request);
    }

    /// @dev The smallest gas limit with which the relay succeeds, by bisection between
    /// `REQUEST_GAS` (which must fail) and `AMPLE` (which must succeed); state is restored.
    function lowestAcceptedGas(SignedAgent.AgentRequest memory request, bytes memory sig)
        internal
        returns (uint256 hi)
    {
        uint256 lo = REQUEST_GAS;
        hi = AMPLE;
        assertFalse(relaySucceedsWith(request, sig, lo), "fails with exactly request.gas");
        assertTrue(relaySucceedsWith(request, sig, hi), "succeeds with ample gas");
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (relaySucceedsWith(request, sig, mid)) hi = mid;
            else lo = mid;
        }
    }

    function relaySucceedsWith(SignedAgent.AgentRequest memory request, bytes memory sig, uint256 gasLimit)
        internal
        returns (bool success)
    {
        uint256 snapshot = vm.snapshotState();
        (success,) = relayWithGas(request, sig, gasLimit);
        vm.revertToState(snapshot);
    }

    function relayWithGas(SignedAgent.AgentRequest memory request, bytes memory sig, uint256 gasLimit)
        internal
        returns (bool success, bytes memory returned)
    {
        vm.prank(relayer);
        (success, returned) = address(agent).call{gas: gasLimit}(abi.encodeCall(agent.execute, (request, sig)));
    }

    function assertInsufficientGas(bytes memory returned) internal pure {
        assertEq(
            keccak256(returned),
            keccak256(abi.encodeWithSelector(SignedAgent.InsufficientGas.selector, REQUEST_GAS)),
            "reverted with InsufficientGas(request.gas)"
        );
    }

    function assertNothingHappened() internal view {
        assertEq(hungry.completed(), 0, "no work recorded");
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
        assertEq(token.balanceOf(alice), 100 ether, "alice charged nothing");
        assertEq(token.balanceOf(relayer), 0, "relayer unpaid");
    }
}
