// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {ConditionRegistry} from "../src/ConditionRegistry.sol";
import {SignedAgent} from "../src/SignedAgent.sol";
import {SignatureRules} from "../src/libraries/SignatureRules.sol";

contract ConditionRegistryTest is Fixture {
    bytes32 internal constant SECRET = keccak256("the secret Carol reveals");
    bytes32 internal constant MESSAGE = keccak256("delivery acknowledgment, session 1, checkpoint 3");

    /// The number of ConditionRegistered events among the logs recorded since `recordLogs`.
    function registrations() internal returns (uint256 count) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter == address(registry) && logs[i].topics[0] == ConditionRegistry.ConditionRegistered.selector)
            {
                count++;
            }
        }
    }

    function test_registerSecret_conditionIdIsTheSha256OfTheSecret() public {
        bytes32 id = registry.registerSecret(SECRET);
        assertEq(id, sha256(abi.encodePacked(SECRET)), "Lightning's and Raiden's hash");
        assertEq(id, registry.hashlockConditionId(SECRET), "the view agrees");
    }

    function test_registerSecret_recordsTheFirstTimeAndNeverChanges() public {
        bytes32 id = registry.hashlockConditionId(SECRET);
        assertEq(registry.registeredAt(id), 0, "never registered");
        uint256 first = vm.getBlockTimestamp();
        vm.expectEmit(address(registry));
        emit ConditionRegistry.ConditionRegistered(id, uint40(first));
        vm.prank(carol);
        registry.registerSecret(SECRET);
        assertEq(registry.registeredAt(id), first, "registered now");

        vm.warp(first + 1 days);
        vm.recordLogs();
        vm.prank(watcher);
        assertEq(registry.registerSecret(SECRET), id, "the same condition");
        assertEq(registry.registeredAt(id), first, "first write wins");
        assertEq(registrations(), 0, "no second event");
    }

    function test_registerSecrets_registersEachOnce() public {
        bytes32[] memory secrets = new bytes32[](4);
        secrets[0] = SECRET;
        secrets[1] = keccak256("second");
        secrets[2] = SECRET;
        secrets[3] = keccak256("third");
        registry.registerSecret(keccak256("third"));
        uint256 earlier = vm.getBlockTimestamp();
        vm.warp(earlier + 60);
        vm.recordLogs();
        registry.registerSecrets(secrets);
        assertEq(registrations(), 2, "the first and the second, once each");
        assertEq(registry.registeredAt(registry.hashlockConditionId(SECRET)), earlier + 60, "first");
        assertEq(registry.registeredAt(registry.hashlockConditionId(keccak256("second"))), earlier + 60, "second");
        assertEq(registry.registeredAt(registry.hashlockConditionId(keccak256("third"))), earlier, "kept");
        registry.registerSecrets(new bytes32[](0));
    }

    function test_registerAck_registersTheSignersAcknowledgment() public {
        bytes32 id = registry.ackConditionId(carol, MESSAGE);
        assertEq(id, keccak256(abi.encode(carol, MESSAGE)), "keccak256(abi.encode(signer, messageHash))");
        vm.expectEmit(address(registry));
        emit ConditionRegistry.ConditionRegistered(id, uint40(vm.getBlockTimestamp()));
        vm.prank(relayer);
        assertEq(registry.registerAck(carol, MESSAGE, signAck(CAROL_PK, MESSAGE)), id, "its condition");
        assertEq(registry.registeredAt(id), vm.getBlockTimestamp(), "registered");
        // Anyone may submit it again: nothing changes.
        vm.warp(vm.getBlockTimestamp() + 1);
        registry.registerAck(carol, MESSAGE, signAck(CAROL_PK, MESSAGE));
        assertEq(registry.registeredAt(id), vm.getBlockTimestamp() - 1, "first write wins");
    }

    function test_registerAck_refusesAnyoneButTheSigner() public {
        bytes32 id = registry.ackConditionId(carol, MESSAGE);
        bytes memory byAlice = signAck(ALICE_PK, MESSAGE);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, carol));
        registry.registerAck(carol, MESSAGE, byAlice);
        bytes memory otherMessage = signAck(CAROL_PK, keccak256("another message"));
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, carol));
        registry.registerAck(carol, MESSAGE, otherMessage);
        assertEq(registry.registeredAt(id), 0, "nothing registered");
    }

    function test_registerAck_refusesHighSZeroRecoveryAndMalformedSignatures() public {
        bytes memory good = signAck(CAROL_PK, MESSAGE);
        bytes memory highS = toHighS(good);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, carol));
        registry.registerAck(carol, MESSAGE, highS);
        bytes memory zero = zeroRecoverySig();
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, address(0)));
        registry.registerAck(address(0), MESSAGE, zero);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, carol));
        registry.registerAck(carol, MESSAGE, hex"0102");
        assertEq(registry.registeredAt(registry.ackConditionId(carol, MESSAGE)), 0, "nothing registered");
        assertEq(registry.registeredAt(registry.ackConditionId(address(0), MESSAGE)), 0, "never the zero address");
    }

    function test_registerAck_refusesASignatureForAnotherChain() public {
        bytes memory here = signAck(CAROL_PK, MESSAGE);
        vm.chainId(7);
        vm.expectRevert(abi.encodeWithSelector(SignatureRules.InvalidSignature.selector, carol));
        registry.registerAck(carol, MESSAGE, here);
    }

    /// A phone with SMT and no ETH registers its secret through the SignedAgent, paying the
    /// relayer its fee in SMT in the same transaction.
    function test_registerSecret_gaslessThroughTheAgent() public {
        fund(carol, 10 ether);
        SignedAgent.AgentRequest memory request =
            requestOf(CAROL_PK, address(registry), abi.encodeCall(registry.registerSecret, (SECRET)), 1 ether, 1);
        bytes memory sig = signRequest(CAROL_PK, request);
        assertTrue(registry.isTrustedForwarder(address(agent)), "the registry trusts the agent");
        vm.prank(relayer);
        agent.execute(request, sig);
        assertEq(registry.registeredAt(registry.hashlockConditionId(SECRET)), vm.getBlockTimestamp(), "registered");
        assertEq(token.balanceOf(relayer), 1 ether, "the relayer's fee");
        assertEq(token.balanceOf(carol), 9 ether, "carol paid only the fee");
    }

    function testFuzz_registerSecret_firstWriteWins(bytes32 secret, uint32 later) public {
        uint256 first = vm.getBlockTimestamp();
        bytes32 id = registry.registerSecret(secret);
        vm.warp(first + bound(later, 1, 10 * 365 days));
        registry.registerSecret(secret);
        bytes32[] memory again = new bytes32[](1);
        again[0] = secret;
        registry.registerSecrets(again);
        assertEq(registry.registeredAt(id), first, "unchanged");
        assertGt(registry.registeredAt(id), 0, "a registered condition is never at 0");
    }
}
