// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {SmartMeshToken} from "../../src/SmartMeshToken.sol";
import {SignedAgent} from "../../src/SignedAgent.sol";
import {TokenNetwork} from "../../src/TokenNetwork.sol";
import {ConditionRegistry} from "../../src/ConditionRegistry.sol";

/// @notice Deploys the three contracts the way production does (agent, then the token and the
/// network trusting it) and signs every message type with the test keys.
abstract contract Fixture is Test {
    uint256 internal constant SUPPLY = 3_141_592_653 ether;
    uint256 internal constant MIN_TIMEOUT = 1 hours;
    uint256 internal constant MAX_TIMEOUT = 30 days;
    uint256 internal constant TIMEOUT = 1 days;
    /// @dev secp256k1's group order; `n - s` turns a low-s signature into its high-s twin.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    uint256 internal constant ALICE_PK = 0xA11CE;
    uint256 internal constant BRANDON_PK = 0xB5A2D0;
    uint256 internal constant CAROL_PK = 0xCA501;
    uint256 internal constant WATCHER_PK = 0x3A7C4E5;
    uint256 internal constant RELAYER_PK = 0x5E1A7E5;

    address internal alice = vm.addr(ALICE_PK);
    address internal brandon = vm.addr(BRANDON_PK);
    address internal carol = vm.addr(CAROL_PK);
    address internal watcher = vm.addr(WATCHER_PK);
    address internal relayer = vm.addr(RELAYER_PK);
    address internal holder = address(0x401DE5);

    SignedAgent internal agent;
    SmartMeshToken internal token;
    TokenNetwork internal network;
    ConditionRegistry internal registry;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        agent = new SignedAgent();
        token = new SmartMeshToken(holder, SUPPLY, address(agent));
        registry = new ConditionRegistry(address(agent));
        network = new TokenNetwork(token, address(agent), registry, MIN_TIMEOUT, MAX_TIMEOUT);
        vm.label(alice, "alice");
        vm.label(brandon, "brandon");
        vm.label(carol, "carol");
        vm.label(watcher, "watcher");
        vm.label(relayer, "relayer");
        vm.label(address(agent), "agent");
        vm.label(address(token), "token");
        vm.label(address(network), "network");
    }

    // -------------------------------------------------------------------------------------------
    // State helpers
    // -------------------------------------------------------------------------------------------

    function fund(address to, uint256 amount) internal {
        vm.prank(holder);
        token.transfer(to, amount);
    }

    /// @dev Opens a channel from `opener` to `partner` with the default timeout.
    function openChannel(address opener, address partner) internal returns (bytes32 channelId) {
        vm.prank(opener);
        channelId = network.open(partner, TIMEOUT);
    }

    /// @dev Funds `participant` from the holder and deposits up to `totalDeposit`.
    function depositFor(bytes32 channelId, address participant, uint256 totalDeposit) internal {
        (uint256 current,) = network.participantInfo(channelId, participant);
        fund(participant, totalDeposit - current);
        vm.startPrank(participant);
        token.approve(address(network), totalDeposit - current);
        network.deposit(channelId, participant, totalDeposit);
        vm.stopPrank();
    }

    /// @dev Opens alice <-> brandon and deposits for both.
    function openAndFund(uint256 aliceDeposit, uint256 brandonDeposit) internal returns (bytes32 channelId) {
        channelId = openChannel(alice, brandon);
        if (aliceDeposit != 0) depositFor(channelId, alice, aliceDeposit);
        if (brandonDeposit != 0) depositFor(channelId, brandon, brandonDeposit);
    }

    function closeWith(
        address closer,
        bytes32 channelId,
        TokenNetwork.BalanceProof memory partnerProof,
        bytes memory partnerSig,
        uint256 claim
    ) internal {
        vm.prank(closer);
        network.close(channelId, partnerProof, partnerSig, "", claim, "");
    }

    function info(bytes32 channelId) internal view returns (TokenNetwork.ChannelInfo memory) {
        return network.channelInfo(channelId);
    }

    // -------------------------------------------------------------------------------------------
    // Signing
    // -------------------------------------------------------------------------------------------

    function signDigest(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The same signature with `s` replaced by `n - s` and `v` flipped: valid for
    /// `ecrecover`, refused by the low-s rule.
    function toHighS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = splitSig(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function splitSig(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    /// @dev A signature for which `ecrecover` returns the zero address (an `r` of 0 is outside
    /// [1, n - 1]), checked here so the tests that use it cannot silently test something else.
    function zeroRecoverySig() internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = (bytes32(0), bytes32(uint256(1)), uint8(27));
        require(ecrecover(keccak256("any digest"), v, r, s) == address(0), "zeroRecoverySig recovers a key");
        return abi.encodePacked(r, s, v);
    }

    function emptyProof() internal pure returns (TokenNetwork.BalanceProof memory proof) {}

    function emptyWatch() internal pure returns (TokenNetwork.Watch memory watch) {}

    function proofOf(bytes32 channelId, uint256 nonce, uint256 transferred)
        internal
        pure
        returns (TokenNetwork.BalanceProof memory proof)
    {
        proof.channelId = channelId;
        proof.nonce = nonce;
        proof.transferredAmount = transferred;
    }

    function signProof(uint256 pk, TokenNetwork.BalanceProof memory proof) internal view returns (bytes memory) {
        return signDigest(pk, network.hashBalanceProof(proof));
    }

    /// @dev A proof by `pk` paying `transferred` in total at `nonce`, and its signature.
    function signedProof(uint256 pk, bytes32 channelId, uint256 nonce, uint256 transferred)
        internal
        view
        returns (TokenNetwork.BalanceProof memory proof, bytes memory sig)
    {
        proof = proofOf(channelId, nonce, transferred);
        sig = signProof(pk, proof);
    }

    function watchOf(
        bytes32 channelId,
        TokenNetwork.BalanceProof memory proof,
        address watcher_,
        uint256 reward,
        uint256 deadline
    ) internal view returns (TokenNetwork.Watch memory watch) {
        watch = TokenNetwork.Watch({
            channelId: channelId,
            proofDigest: network.hashBalanceProof(proof),
            watcher: watcher_,
            reward: reward,
            deadline: deadline
        });
    }

    function signWatch(uint256 pk, TokenNetwork.Watch memory watch) internal view returns (bytes memory) {
        return signDigest(pk, network.hashWatch(watch));
    }

    function signWithdraw(uint256 pk, bytes32 channelId, address participant, uint256 totalWithdraw, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return signDigest(pk, network.hashWithdraw(channelId, participant, totalWithdraw, deadline));
    }

    function signCooperativeSettle(uint256 pk, bytes32 channelId, uint256 balance1, uint256 balance2, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return signDigest(pk, network.hashCooperativeSettle(channelId, balance1, balance2, deadline));
    }

    function signPermit(uint256 pk, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address owner = vm.addr(pk);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                owner,
                spender,
                value,
                token.nonces(owner),
                deadline
            )
        );
        return vm.sign(pk, _typedDigest(token.DOMAIN_SEPARATOR(), structHash));
    }

    function signAuthorization(
        uint256 pk,
        bytes32 typeHash,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (uint8 v, bytes32 r, bytes32 s) {
        bytes32 structHash = keccak256(abi.encode(typeHash, vm.addr(pk), to, value, validAfter, validBefore, nonce));
        return vm.sign(pk, _typedDigest(token.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev An agent request from `pk`'s address that any relayer may submit, with a one-hour
    /// deadline and the given fee in SMT.
    function requestOf(uint256 pk, address target, bytes memory data, uint256 fee, uint256 nonce)
        internal
        view
        returns (SignedAgent.AgentRequest memory request)
    {
        request = SignedAgent.AgentRequest({
            from: vm.addr(pk),
            agent: address(0),
            target: target,
            data: data,
            gas: 300_000,
            feeToken: address(token),
            fee: fee,
            nonce: nonce,
            deadline: block.timestamp + 1 hours
        });
    }

    /// @dev `pk`'s acknowledgment of `messageHash` (a signature lock's condition), built from
    /// the EIP-712 definitions rather than read from the registry.
    function signAck(uint256 pk, bytes32 messageHash) internal view returns (bytes memory) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("SmartMesh Conditions"),
                keccak256("1"),
                block.chainid,
                address(registry)
            )
        );
        bytes32 structHash = keccak256(abi.encode(keccak256("Ack(bytes32 messageHash)"), messageHash));
        return signDigest(pk, _typedDigest(domain, structHash));
    }

    function signRequest(uint256 pk, SignedAgent.AgentRequest memory request) internal view returns (bytes memory) {
        return signDigest(pk, agent.hashRequest(request));
    }

    function _typedDigest(bytes32 domainSeparator, bytes32 structHash) private pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }
}
