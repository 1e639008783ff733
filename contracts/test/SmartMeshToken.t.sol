// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Fixture} from "./utils/Fixture.sol";
import {SmartMeshToken} from "../src/SmartMeshToken.sol";
import {SignedAgent} from "../src/SignedAgent.sol";
import {SignatureRules} from "../src/libraries/SignatureRules.sol";

/// @notice Digests built here from the EIP-712 definitions rather than read from the token, so
/// a wrong domain or type hash in the contract cannot cancel out in the test.
abstract contract TokenTestBase is Fixture {
    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    bytes32 internal constant TRANSFER_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant RECEIVE_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant CANCEL_TYPEHASH = keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    /// @dev The CVE-2018-10376 inputs: `value + fee` wraps to exactly 0 in 256 bits.
    uint256 internal constant CVE_VALUE = 0x8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    uint256 internal constant CVE_FEE = 0x7000000000000000000000000000000000000000000000000000000000000001;

    function tokenDomain(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(EIP712_DOMAIN_TYPEHASH, keccak256("SmartMesh Token"), keccak256("1"), chainId, verifyingContract)
        );
    }

    function typedDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function authorizationDigest(
        bytes32 domainSeparator,
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal pure returns (bytes32) {
        return typedDigest(
            domainSeparator, keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce))
        );
    }

    /// @dev An authorization for `from` signed by `pk`, which need not be `from`'s key.
    function signAuthorizationFor(
        uint256 pk,
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (uint8 v, bytes32 r, bytes32 s) {
        return vm.sign(
            pk,
            authorizationDigest(
                tokenDomain(block.chainid, address(token)), typeHash, from, to, value, validAfter, validBefore, nonce
            )
        );
    }

    function signCancel(uint256 pk, address authorizer, bytes32 nonce)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        return vm.sign(
            pk,
            typedDigest(
                tokenDomain(block.chainid, address(token)), keccak256(abi.encode(CANCEL_TYPEHASH, authorizer, nonce))
            )
        );
    }

    function permitDigest(address owner, address spender, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        return typedDigest(
            tokenDomain(block.chainid, address(token)),
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonce, deadline))
        );
    }

    /// @dev A window that is valid now: EIP-3009 needs `validAfter < now < validBefore`.
    function window() internal view returns (uint256 validAfter, uint256 validBefore) {
        return (block.timestamp - 1, block.timestamp + 1 hours);
    }

    function transferAuthorized(uint256 pk, address to, uint256 value, bytes32 nonce) internal {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(pk, TRANSFER_TYPEHASH, to, value, validAfter, validBefore, nonce);
        vm.prank(relayer);
        token.transferWithAuthorization(vm.addr(pk), to, value, validAfter, validBefore, nonce, v, r, s);
    }
}

contract SmartMeshTokenConstructorTest is TokenTestBase {
    function test_constructor_mintsSupplyToHolder() public view {
        assertEq(token.totalSupply(), SUPPLY, "supply");
        assertEq(token.balanceOf(holder), SUPPLY, "holder has it all");
        assertEq(token.balanceOf(address(agent)), 0, "agent holds nothing");
    }

    function test_constructor_setsMetadata() public view {
        assertEq(keccak256(bytes(token.name())), keccak256("SmartMesh Token"), "name");
        assertEq(keccak256(bytes(token.symbol())), keccak256("SMT"), "symbol");
        assertEq(uint256(token.decimals()), 18, "decimals");
        assertEq(SUPPLY, 3_141_592_653 * 10 ** 18, "mainnet SMT supply");
    }

    function test_constructor_trustsTheAgent() public view {
        assertEq(token.trustedForwarder(), address(agent), "trustedForwarder");
        assertTrue(token.isTrustedForwarder(address(agent)), "agent trusted");
        assertFalse(token.isTrustedForwarder(relayer), "relayer not trusted");
    }

    function test_constructor_domainSeparatorMatchesEip712() public view {
        assertEq(token.DOMAIN_SEPARATOR(), tokenDomain(block.chainid, address(token)), "domain separator");
        assertEq(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), TRANSFER_TYPEHASH, "transfer type hash");
        assertEq(token.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), RECEIVE_TYPEHASH, "receive type hash");
        assertEq(token.CANCEL_AUTHORIZATION_TYPEHASH(), CANCEL_TYPEHASH, "cancel type hash");
    }

    function testFuzz_constructor_mintsAnySupply(address to, uint256 supply) public {
        vm.assume(to != address(0));
        SmartMeshToken other = new SmartMeshToken(to, supply, address(agent));
        assertEq(other.totalSupply(), supply, "supply");
        assertEq(other.balanceOf(to), supply, "holder");
    }
}

contract SmartMeshTokenPermitTest is TokenTestBase {
    function test_permit_setsAllowanceAndUsesNonce() public {
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, brandon, 100 ether, deadline);

        vm.expectEmit(address(token));
        emit IERC20.Approval(alice, brandon, 100 ether);
        vm.prank(relayer);
        token.permit(alice, brandon, 100 ether, deadline, v, r, s);

        assertEq(token.allowance(alice, brandon), 100 ether, "allowance");
        assertEq(token.nonces(alice), 1, "nonce advanced");
    }

    function test_permit_replayReverts() public {
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, brandon, 100 ether, deadline);
        token.permit(alice, brandon, 100 ether, deadline, v, r, s);
        assertEq(token.allowance(alice, brandon), 100 ether, "first use accepted");
        assertEq(token.nonces(alice), 1, "nonce advanced");
        vm.prank(alice);
        assertTrue(token.approve(brandon, 0), "approve");

        // The nonce moved on, so the same signature now recovers to some other address: the
        // one it recovers to over the digest with nonce 1, which is not alice.
        address recovered = ecrecover(permitDigest(alice, brandon, 100 ether, 1, deadline), v, r, s);
        assertTrue(recovered != alice && recovered != address(0), "recovers to someone else");
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, recovered, alice));
        token.permit(alice, brandon, 100 ether, deadline, v, r, s);
        assertEq(token.allowance(alice, brandon), 0, "allowance unchanged");
        assertEq(token.nonces(alice), 1, "nonce not advanced again");
    }

    function test_permit_revertsForWrongSigner() public {
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BRANDON_PK, permitDigest(alice, brandon, 100 ether, 0, deadline));

        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, brandon, alice));
        token.permit(alice, brandon, 100 ether, deadline, v, r, s);
        assertEq(token.allowance(alice, brandon), 0, "allowance");
        assertEq(token.nonces(alice), 0, "nonce unused");
    }

    function test_permit_revertsWhenExpired() public {
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, brandon, 100 ether, deadline);

        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        token.permit(alice, brandon, 100 ether, deadline, v, r, s);
        assertEq(token.allowance(alice, brandon), 0, "allowance");
        assertEq(token.nonces(alice), 0, "nonce unused");
    }

    function test_permit_validAtDeadline() public {
        uint256 deadline = block.timestamp;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(ALICE_PK, brandon, 1, deadline);
        token.permit(alice, brandon, 1, deadline, v, r, s);
        assertEq(token.allowance(alice, brandon), 1, "allowance");
    }
}

contract SmartMeshTokenAuthorizationTest is TokenTestBase {
    bytes32 internal constant NONCE = keccak256("nonce");

    function setUp() public override {
        super.setUp();
        fund(alice, 1_000 ether);
    }

    // ---- transferWithAuthorization ----

    function test_transferWithAuthorization_movesTokens() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 250 ether, validAfter, validBefore, NONCE);

        vm.expectEmit(address(token));
        emit SmartMeshToken.AuthorizationUsed(alice, NONCE);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, brandon, 250 ether);
        // Anyone may submit: the relayer neither pays nor receives.
        vm.prank(relayer);
        token.transferWithAuthorization(alice, brandon, 250 ether, validAfter, validBefore, NONCE, v, r, s);

        assertEq(token.balanceOf(alice), 750 ether, "alice");
        assertEq(token.balanceOf(brandon), 250 ether, "brandon");
        assertEq(token.balanceOf(relayer), 0, "relayer");
        assertTrue(token.authorizationState(alice, NONCE), "nonce used");
        assertFalse(token.authorizationState(brandon, NONCE), "nonces are per authorizer");
    }

    function test_transferWithAuthorization_revertsBeforeValidAfter() public {
        // `validAfter` is exclusive: at exactly that second the authorization is not valid yet.
        uint256 validAfter = vm.getBlockTimestamp();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE);

        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationNotYetValid.selector, validAfter));
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE, v, r, s);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");

        vm.warp(validAfter + 1);
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 1 ether, "valid one second later");
    }

    function test_transferWithAuthorization_revertsAtValidBefore() public {
        uint256 validBefore = vm.getBlockTimestamp() + 10;
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 1 ether, 0, validBefore, NONCE);

        vm.warp(validBefore);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationExpired.selector, validBefore));
        token.transferWithAuthorization(alice, brandon, 1 ether, 0, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 0, "nothing moved");
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_transferWithAuthorization_replayReverts() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);

        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 1 ether, "paid once");
    }

    function test_transferWithAuthorization_nonceSharedWithReceive() public {
        // Both type hashes draw on one nonce space: using a nonce for one burns it for the other.
        transferAuthorized(ALICE_PK, brandon, 1 ether, NONCE);
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);

        vm.prank(brandon);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 1 ether, "paid once");
        assertEq(token.balanceOf(alice), 999 ether, "alice charged once");
    }

    function test_transferWithAuthorization_revertsAfterCancel() public {
        (uint8 cv, bytes32 cr, bytes32 cs) = signCancel(ALICE_PK, alice, NONCE);
        token.cancelAuthorization(alice, NONCE, cv, cr, cs);
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);

        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(alice), 1_000 ether, "alice keeps her tokens");
    }

    function test_transferWithAuthorization_revertsForChangedTerms() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);

        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.transferWithAuthorization(alice, carol, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.transferWithAuthorization(alice, brandon, 2 ether, validAfter, validBefore, NONCE, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.transferWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore + 1, NONCE, v, r, s);
        // A receive authorization is not a transfer authorization.
        vm.prank(brandon);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(alice), 1_000 ether, "nothing moved");
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    /// @dev Pre-signed payments clear whatever order the relayer submits them in.
    function testFuzz_transferWithAuthorization_clearsInAnyOrder(bytes32 n0, bytes32 n1, bytes32 n2, uint256 order)
        public
    {
        vm.assume(n0 != n1 && n1 != n2 && n0 != n2);
        bytes32[3] memory nonces = [n0, n1, n2];
        uint256[3] memory values = [uint256(1 ether), 2 ether, 4 ether];
        (uint256 validAfter, uint256 validBefore) = window();
        uint8[3] memory vs;
        bytes32[3] memory rs;
        bytes32[3] memory ss;
        for (uint256 i; i < 3; ++i) {
            (vs[i], rs[i], ss[i]) =
                signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, values[i], validAfter, validBefore, nonces[i]);
        }

        uint256[3][6] memory permutations = [
            [uint256(0), 1, 2],
            [uint256(0), 2, 1],
            [uint256(1), 0, 2],
            [uint256(1), 2, 0],
            [uint256(2), 0, 1],
            [uint256(2), 1, 0]
        ];
        uint256[3] memory sequence = permutations[bound(order, 0, 5)];
        uint256 paid;
        for (uint256 k; k < 3; ++k) {
            uint256 i = sequence[k];
            assertFalse(token.authorizationState(alice, nonces[i]), "unused before");
            token.transferWithAuthorization(
                alice, brandon, values[i], validAfter, validBefore, nonces[i], vs[i], rs[i], ss[i]
            );
            paid += values[i];
            assertTrue(token.authorizationState(alice, nonces[i]), "used after");
            assertEq(token.balanceOf(brandon), paid, "paid so far");
        }
        assertEq(token.balanceOf(alice), 1_000 ether - 7 ether, "alice");
    }

    // ---- receiveWithAuthorization ----

    function test_receiveWithAuthorization_movesTokens() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 300 ether, validAfter, validBefore, NONCE);

        vm.expectEmit(address(token));
        emit SmartMeshToken.AuthorizationUsed(alice, NONCE);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, brandon, 300 ether);
        vm.prank(brandon);
        token.receiveWithAuthorization(alice, brandon, 300 ether, validAfter, validBefore, NONCE, v, r, s);

        assertEq(token.balanceOf(alice), 700 ether, "alice");
        assertEq(token.balanceOf(brandon), 300 ether, "brandon");
        assertTrue(token.authorizationState(alice, NONCE), "nonce used");
    }

    function test_receiveWithAuthorization_revertsForOtherCaller() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);

        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.CallerNotPayee.selector, relayer, brandon));
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
        assertEq(token.balanceOf(brandon), 0, "nothing moved");
    }

    function test_receiveWithAuthorization_throughAgentPaysThePayee() public {
        // A payee holding no ETH claims its payment through the agent: the token must see the
        // payee, not the agent, as the caller.
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 5 ether, validAfter, validBefore, NONCE);
        bytes memory data = abi.encodeCall(
            token.receiveWithAuthorization, (alice, brandon, 5 ether, validAfter, validBefore, NONCE, v, r, s)
        );
        SignedAgent.AgentRequest memory request = requestOf(BRANDON_PK, address(token), data, 1 ether, 1);
        bytes memory sig = signRequest(BRANDON_PK, request);

        vm.prank(relayer);
        agent.execute(request, sig);

        assertEq(token.balanceOf(alice), 995 ether, "alice");
        assertEq(token.balanceOf(brandon), 4 ether, "brandon got 5, paid a fee of 1");
        assertEq(token.balanceOf(relayer), 1 ether, "relayer fee");
        assertTrue(token.authorizationState(alice, NONCE), "nonce used");
    }

    function test_receiveWithAuthorization_revertsBeforeValidAfter() public {
        // Read through the cheatcode: the test warps below, and with via-IR a local derived from
        // `block.timestamp` may be recomputed after the warp.
        uint256 validAfter = vm.getBlockTimestamp() + 5;
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE);
        vm.prank(brandon);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationNotYetValid.selector, validAfter));
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 0, "nothing moved");
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");

        // The same authorization is accepted once its window opens: only the time refused it.
        vm.warp(validAfter + 1);
        vm.prank(brandon);
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validAfter + 1 hours, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 1 ether, "valid once the window opens");
    }

    function test_receiveWithAuthorization_revertsWhenExpired() public {
        uint256 validBefore = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 1 ether, 0, validBefore, NONCE);
        vm.prank(brandon);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationExpired.selector, validBefore));
        token.receiveWithAuthorization(alice, brandon, 1 ether, 0, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), 0, "nothing moved");
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_receiveWithAuthorization_replayReverts() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, brandon, 1 ether, validAfter, validBefore, NONCE);
        vm.startPrank(brandon);
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.receiveWithAuthorization(alice, brandon, 1 ether, validAfter, validBefore, NONCE, v, r, s);
        vm.stopPrank();
        assertEq(token.balanceOf(brandon), 1 ether, "paid once");
    }

    // ---- cancelAuthorization ----

    function test_cancelAuthorization_burnsNonce() public {
        (uint8 v, bytes32 r, bytes32 s) = signCancel(ALICE_PK, alice, NONCE);

        vm.expectEmit(address(token));
        emit SmartMeshToken.AuthorizationCanceled(alice, NONCE);
        vm.prank(relayer);
        token.cancelAuthorization(alice, NONCE, v, r, s);

        assertTrue(token.authorizationState(alice, NONCE), "nonce burnt");
        assertEq(token.balanceOf(alice), 1_000 ether, "no tokens moved");
    }

    function test_cancelAuthorization_replayReverts() public {
        (uint8 v, bytes32 r, bytes32 s) = signCancel(ALICE_PK, alice, NONCE);
        token.cancelAuthorization(alice, NONCE, v, r, s);
        assertTrue(token.authorizationState(alice, NONCE), "burnt by the first cancel");
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.cancelAuthorization(alice, NONCE, v, r, s);
        assertTrue(token.authorizationState(alice, NONCE), "still burnt");
    }

    function test_cancelAuthorization_revertsAfterUse() public {
        transferAuthorized(ALICE_PK, brandon, 1 ether, NONCE);
        assertEq(token.balanceOf(brandon), 1 ether, "authorization used");
        (uint8 v, bytes32 r, bytes32 s) = signCancel(ALICE_PK, alice, NONCE);
        vm.expectRevert(abi.encodeWithSelector(SmartMeshToken.AuthorizationAlreadyUsed.selector, alice, NONCE));
        token.cancelAuthorization(alice, NONCE, v, r, s);
        assertTrue(token.authorizationState(alice, NONCE), "still used");
    }

    function test_cancelAuthorization_revertsForWrongSigner() public {
        (uint8 v, bytes32 r, bytes32 s) = signCancel(BRANDON_PK, alice, NONCE);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.cancelAuthorization(alice, NONCE, v, r, s);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_cancelAuthorization_revertsForHighS() public {
        (uint8 v, bytes32 r, bytes32 s) = signCancel(ALICE_PK, alice, NONCE);
        (r, s, v) = splitSig(toHighS(abi.encodePacked(r, s, v)));
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, alice));
        token.cancelAuthorization(alice, NONCE, v, r, s);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_cancelAuthorization_revertsForZeroRecovery() public {
        (bytes32 r, bytes32 s, uint8 v) = splitSig(zeroRecoverySig());
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, address(0)));
        token.cancelAuthorization(address(0), NONCE, v, r, s);
        assertFalse(token.authorizationState(address(0), NONCE), "zero address nonce unused");
    }
}

/// @notice `SignatureRules` as applied by the EIP-3009 functions: every way a signature can be
/// wrong is refused with `InvalidSignature(from)` and moves nothing.
contract SmartMeshTokenSignatureRulesTest is TokenTestBase {
    bytes32 internal constant NONCE = bytes32(uint256(42));
    uint256 internal constant VALUE = 10 ether;

    function setUp() public override {
        super.setUp();
        fund(alice, 1_000 ether);
    }

    function expectRejected(address from, uint8 v, bytes32 r, bytes32 s) internal {
        (uint256 validAfter, uint256 validBefore) = window();
        uint256 supply = token.totalSupply();
        uint256 fromBalance = token.balanceOf(from);

        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, from));
        token.transferWithAuthorization(from, brandon, VALUE, validAfter, validBefore, NONCE, v, r, s);

        vm.prank(brandon);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, from));
        token.receiveWithAuthorization(from, brandon, VALUE, validAfter, validBefore, NONCE, v, r, s);

        assertEq(token.balanceOf(from), fromBalance, "from");
        assertEq(token.balanceOf(brandon), 0, "brandon");
        assertEq(token.totalSupply(), supply, "supply");
        assertFalse(token.authorizationState(from, NONCE), "nonce unused");
    }

    function test_transferWithAuthorization_revertsForWrongSigner() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorizationFor(BRANDON_PK, TRANSFER_TYPEHASH, alice, brandon, VALUE, validAfter, validBefore, NONCE);
        expectRejected(alice, v, r, s);
    }

    function test_transferWithAuthorization_revertsForHighS() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, VALUE, validAfter, validBefore, NONCE);
        // The low-s original is accepted, so only the malleated twin's `s` is at fault below.
        uint256 snapshot = vm.snapshotState();
        token.transferWithAuthorization(alice, brandon, VALUE, validAfter, validBefore, NONCE, v, r, s);
        assertEq(token.balanceOf(brandon), VALUE, "original accepted");
        vm.revertToState(snapshot);

        (r, s, v) = splitSig(toHighS(abi.encodePacked(r, s, v)));
        expectRejected(alice, v, r, s);
    }

    function test_transferWithAuthorization_revertsForZeroRecovery() public {
        (bytes32 r, bytes32 s, uint8 v) = splitSig(zeroRecoverySig());
        // Expecting the zero address is the dangerous case: a naive `ecrecover(...) == from`
        // check would accept it.
        expectRejected(address(0), v, r, s);
        expectRejected(alice, v, r, s);
    }

    function test_transferWithAuthorization_revertsForBadV() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, VALUE, validAfter, validBefore, NONCE);
        expectRejected(alice, 29, r, s);
        expectRejected(alice, 0, r, s);
    }

    function test_transferWithAuthorization_revertsForOtherChain() public {
        (uint256 validAfter, uint256 validBefore) = window();
        bytes32 otherChain = tokenDomain(block.chainid + 1, address(token));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            ALICE_PK,
            authorizationDigest(otherChain, TRANSFER_TYPEHASH, alice, brandon, VALUE, validAfter, validBefore, NONCE)
        );
        expectRejected(alice, v, r, s);
    }

    function test_transferWithAuthorization_revertsForOtherContract() public {
        (uint256 validAfter, uint256 validBefore) = window();
        SmartMeshToken twin = new SmartMeshToken(holder, SUPPLY, address(agent));
        bytes32 otherContract = tokenDomain(block.chainid, address(twin));
        assertEq(twin.DOMAIN_SEPARATOR(), otherContract, "twin's domain");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            ALICE_PK,
            authorizationDigest(otherContract, TRANSFER_TYPEHASH, alice, brandon, VALUE, validAfter, validBefore, NONCE)
        );
        expectRejected(alice, v, r, s);
    }

    function test_transferWithAuthorization_revertsAfterChainFork() public {
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, brandon, VALUE, validAfter, validBefore, NONCE);
        // A signature from before a fork must not replay on the fork.
        vm.chainId(block.chainid + 1);
        expectRejected(alice, v, r, s);
    }
}

/// @notice CVE-2018-10376 ("proxyOverflow"): the 2018 `transferProxy` checked
/// `balance < fee + value`, and `CVE_VALUE + CVE_FEE` wraps to 0, so the check passed and
/// 2^256 tokens were minted. None of today's signature-driven paths may accept those inputs.
contract SmartMeshTokenProxyOverflowTest is TokenTestBase {
    bytes32 internal constant NONCE = keccak256("proxyOverflow");

    function setUp() public override {
        super.setUp();
        fund(alice, 100 ether);
        fund(address(agent), 7 ether);
        fund(address(token), 3 ether);
    }

    function test_cveInputs_wrapToZero() public pure {
        unchecked {
            assertEq(CVE_VALUE + CVE_FEE, 0, "the historic sum wraps");
        }
    }

    function test_transferWithAuthorization_rejectsCveValueToSelf() public {
        uint256[6] memory before = snapshotBalances();
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, alice, CVE_VALUE, validAfter, validBefore, NONCE);

        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100 ether, CVE_VALUE)
        );
        vm.prank(relayer);
        token.transferWithAuthorization(alice, alice, CVE_VALUE, validAfter, validBefore, NONCE, v, r, s);

        assertUnchanged(before);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_receiveWithAuthorization_rejectsCveValueToSelf() public {
        uint256[6] memory before = snapshotBalances();
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, RECEIVE_TYPEHASH, alice, CVE_VALUE, validAfter, validBefore, NONCE);

        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100 ether, CVE_VALUE)
        );
        vm.prank(alice);
        token.receiveWithAuthorization(alice, alice, CVE_VALUE, validAfter, validBefore, NONCE, v, r, s);

        assertUnchanged(before);
        assertFalse(token.authorizationState(alice, NONCE), "nonce unused");
    }

    function test_agentExecute_rejectsCveValueAndFee() public {
        uint256[6] memory before = snapshotBalances();
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (alice, CVE_VALUE)), CVE_FEE, 1);
        bytes memory sig = signRequest(ALICE_PK, request);

        bytes memory inner =
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100 ether, CVE_VALUE);
        vm.expectRevert(abi.encodeWithSelector(SignedAgent.CallFailed.selector, inner));
        vm.prank(relayer);
        agent.execute(request, sig);

        assertUnchanged(before);
        assertFalse(agent.nonceUsed(alice, 1), "nonce unused");
    }

    function test_agentExecute_rejectsCveFeeAfterValidTransfer() public {
        // The transfer itself is affordable; only the fee is absurd. Were fee and value summed
        // and compared with the balance, this is where the wrap would slip through.
        uint256[6] memory before = snapshotBalances();
        uint256 value = 1 ether;
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (alice, value)), CVE_FEE, 2);
        bytes memory sig = signRequest(ALICE_PK, request);

        vm.expectRevert(abi.encodeWithSelector(SignedAgent.FeePaymentFailed.selector, address(token), alice, CVE_FEE));
        vm.prank(relayer);
        agent.execute(request, sig);

        assertUnchanged(before);
        assertFalse(agent.nonceUsed(alice, 2), "nonce unused");
    }

    /// @dev Moving tokens to oneself never creates any, whatever the amount.
    function testFuzz_transferWithAuthorization_toSelfNeverMints(uint256 value, bytes32 nonce, bool affordable)
        public
    {
        // Half the runs within alice's balance (accepted), half anywhere (mostly refused): an
        // unbounded uint256 alone would almost never exercise the accepted branch.
        if (affordable) value = bound(value, 0, 100 ether);
        uint256[6] memory before = snapshotBalances();
        (uint256 validAfter, uint256 validBefore) = window();
        (uint8 v, bytes32 r, bytes32 s) =
            signAuthorization(ALICE_PK, TRANSFER_TYPEHASH, alice, value, validAfter, validBefore, nonce);

        if (value > 100 ether) {
            vm.expectRevert(
                abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 100 ether, value)
            );
        }
        token.transferWithAuthorization(alice, alice, value, validAfter, validBefore, nonce, v, r, s);

        assertUnchanged(before);
        assertEq(token.authorizationState(alice, nonce), value <= 100 ether, "nonce used iff accepted");
    }

    function snapshotBalances() internal view returns (uint256[6] memory balances) {
        balances = [
            token.totalSupply(),
            token.balanceOf(alice),
            token.balanceOf(relayer),
            token.balanceOf(address(agent)),
            token.balanceOf(address(token)),
            token.balanceOf(holder)
        ];
    }

    function assertUnchanged(uint256[6] memory before) internal view {
        uint256[6] memory afterwards = snapshotBalances();
        assertEq(afterwards[0], before[0], "totalSupply");
        assertEq(afterwards[1], before[1], "alice");
        assertEq(afterwards[2], before[2], "relayer");
        assertEq(afterwards[3], before[3], "agent");
        assertEq(afterwards[4], before[4], "token contract");
        assertEq(afterwards[5], before[5], "holder");
    }
}

/// @notice ERC-2771: only the agent may speak for someone else, by appending their address.
contract SmartMeshTokenForwarderTest is TokenTestBase {
    function setUp() public override {
        super.setUp();
        fund(alice, 100 ether);
        fund(brandon, 50 ether);
        // Tokens held by the agent itself must never be what a relayed call moves.
        fund(address(agent), 20 ether);
    }

    function test_transfer_throughAgentMovesSignersTokens() public {
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.transfer, (carol, 30 ether)), 0, 1);
        bytes memory sig = signRequest(ALICE_PK, request);

        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, carol, 30 ether);
        vm.prank(relayer);
        agent.execute(request, sig);

        assertEq(token.balanceOf(alice), 70 ether, "alice paid");
        assertEq(token.balanceOf(carol), 30 ether, "carol received");
        assertEq(token.balanceOf(address(agent)), 20 ether, "agent untouched");
        assertEq(token.balanceOf(relayer), 0, "relayer untouched");
    }

    function test_approve_throughAgentApprovesForSigner() public {
        SignedAgent.AgentRequest memory request =
            requestOf(ALICE_PK, address(token), abi.encodeCall(token.approve, (carol, 5 ether)), 0, 1);
        bytes memory sig = signRequest(ALICE_PK, request);
        vm.prank(relayer);
        agent.execute(request, sig);

        assertEq(token.allowance(alice, carol), 5 ether, "alice's allowance");
        assertEq(token.allowance(address(agent), carol), 0, "agent's allowance");
    }

    function test_transfer_appendedSenderIgnoredFromNonForwarder() public {
        // Brandon appends alice's address as an ERC-2771 suffix; he is not the forwarder, so
        // the token must read him, not alice, as the sender.
        bytes memory spoofed = abi.encodePacked(abi.encodeCall(token.transfer, (carol, 10 ether)), alice);
        vm.prank(brandon);
        (bool success, bytes memory returned) = address(token).call(spoofed);

        assertTrue(success, "a plain transfer by brandon");
        assertTrue(abi.decode(returned, (bool)), "returned true");
        assertEq(token.balanceOf(alice), 100 ether, "alice untouched");
        assertEq(token.balanceOf(brandon), 40 ether, "brandon paid");
        assertEq(token.balanceOf(carol), 10 ether, "carol received");
    }

    function test_transfer_appendedSenderIgnoredFromEmptyAccount() public {
        bytes memory spoofed = abi.encodePacked(abi.encodeCall(token.transfer, (carol, 10 ether)), alice);
        vm.prank(carol);
        (bool success, bytes memory returned) = address(token).call(spoofed);

        assertFalse(success, "carol has nothing to send");
        vm.assertEq(
            returned,
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, carol, 0, 10 ether),
            "reverted as carol"
        );
        assertEq(token.balanceOf(alice), 100 ether, "alice untouched");
    }
}
