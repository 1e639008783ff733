// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "../utils/Fixture.sol";
import {LockHandler} from "./handlers/LockHandler.sol";
import {Console} from "../utils/Console.sol";

/// @notice DESIGN 3.4's invariants for conditional payments over random interleavings of
/// honest off-chain steps, registrations at any time, honest and cheating closes, and old
/// proofs submitted by anyone. Each run must exercise what it guards: `afterInvariant` fails a
/// run whose handler never reached the cases.
/// forge-config: default.invariant.depth = 200
/// forge-config: ci.invariant.depth = 300
contract LocksInvariantTest is Fixture {
    uint256 internal constant DAVE_PK = 0xDA7E;

    LockHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new LockHandler(token, network, registry, [ALICE_PK, BRANDON_PK, CAROL_PK, DAVE_PK], watcher, 2 hours);
        fund(address(handler), SUPPLY / 2);
        for (uint256 pair; pair < handler.PAIRS(); ++pair) {
            handler.open(pair, (pair + 1) * 300 ether, (pair + 2) * 200 ether);
        }
        bytes4[] memory selectors = new bytes4[](18);
        selectors[0] = LockHandler.pay.selector;
        selectors[1] = LockHandler.pay.selector;
        selectors[2] = LockHandler.lock.selector;
        selectors[3] = LockHandler.lock.selector;
        selectors[4] = LockHandler.lock.selector;
        selectors[5] = LockHandler.unlock.selector;
        selectors[6] = LockHandler.expire.selector;
        selectors[7] = LockHandler.expire.selector;
        selectors[8] = LockHandler.register.selector;
        selectors[9] = LockHandler.register.selector;
        selectors[10] = LockHandler.warp.selector;
        selectors[11] = LockHandler.warp.selector;
        selectors[12] = LockHandler.close.selector;
        selectors[13] = LockHandler.close.selector;
        selectors[14] = LockHandler.updateClaim.selector;
        selectors[15] = LockHandler.updateClaim.selector;
        selectors[16] = LockHandler.settle.selector;
        selectors[17] = LockHandler.settle.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice The network holds exactly what its unsettled channels hold.
    function invariant_networkHoldsEveryUnsettledTotal() public view {
        uint256 sum;
        for (uint256 pair; pair < handler.PAIRS(); ++pair) {
            (address p1, address p2) = handler.pairParticipants(pair);
            (bytes32 id,) = network.currentChannel(p1, p2);
            sum += network.channelTotal(id);
        }
        assertEq(sum, handler.ghostNetworkTotal(), "channel totals match the handler's accounting");
        assertEq(token.balanceOf(address(network)), sum, "the network holds every unsettled TOTAL");
    }

    /// @notice Payouts plus reward equal TOTAL; an honest closer never pays more than Phi of its
    /// latest proof and is never penalized; an honest non-closer gets at least Phi of the latest
    /// proof it received minus the reward; a closer that drops a claimable lock is penalized;
    /// Phi never falls along an honest sequence; settleWithLocks never reverts.
    function invariant_settlesPayWhatIsOwed() public view {
        assertEq(handler.violations(), 0, handler.lastViolation());
    }

    /// @notice A registry entry never changes once written.
    function invariant_registryEntriesNeverChange() public view {
        uint256 count = handler.conditionCount();
        for (uint256 i; i < count; ++i) {
            bytes32 id = handler.ghostConditions(i);
            assertEq(uint256(registry.registeredAt(id)), handler.ghostRegisteredAt(id), "first write wins");
        }
    }

    /// @dev A run that never reached a case proves nothing about it.
    function afterInvariant() public view {
        Console.log("payments", handler.payments());
        Console.log("locks", handler.locksMade());
        Console.log("unlocks", handler.unlocks());
        Console.log("expiries", handler.expiries());
        Console.log("registrations", handler.registrations());
        Console.log("late registrations", handler.lateRegistrations());
        Console.log("honest closes", handler.closesByMode0());
        Console.log("cheating closes", handler.cheatingCloses());
        Console.log("evidence accepted", handler.evidenceAccepted());
        Console.log("old proofs submitted", handler.oldProofsSubmitted());
        Console.log("settles", handler.settlesWithLocks());
        Console.log("locks claimed at settle", handler.locksClaimedAtSettle());
        Console.log("dropped-lock penalties", handler.droppedLockPenalties());
        Console.log("phi comparisons", handler.phiComparisons());
        assertGt(handler.payoutChecks(), 0, "no settle checked its payouts");
        assertGt(handler.honestCloserChecks(), 0, "no honest close was checked");
        assertGt(handler.honestNonCloserChecks(), 0, "no honest non-closer was checked");
        assertGt(handler.phiComparisons(), 0, "no honest sequence was checked");
        assertGt(handler.conditionCount(), 0, "nothing was registered");
    }
}
