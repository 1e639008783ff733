// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {LockHandler} from "./invariant/handlers/LockHandler.sol";

/// @notice The model test of DESIGN 3.4: fuzzed honest off-chain sequences (pay, lock, unlock,
/// expire, in any order and timing, with conditions registered at any time), each ended by a
/// close from either side, honest or cheating, with old proofs submitted by the other side.
/// The handler checks at every settle that Phi never fell and that an honest side got at least
/// what it is owed.
contract LocksModelTest is Fixture {
    uint256 internal constant DAVE_PK = 0xDA7E;
    uint256 internal constant STEPS = 48;

    LockHandler internal model;

    function setUp() public override {
        super.setUp();
        model = new LockHandler(token, network, registry, [ALICE_PK, BRANDON_PK, CAROL_PK, DAVE_PK], watcher, 2 hours);
        fund(address(model), SUPPLY / 2);
    }

    /// One history per seed: STEPS random steps over three channels, then every channel closed
    /// and settled.
    function run(uint256 seed) internal {
        for (uint256 i; i < STEPS; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 kind = r % 10;
            uint256 a = r >> 8;
            uint256 b = r >> 64;
            uint256 c = r >> 128;
            if (kind == 0 || kind == 1) model.pay(a, b, c);
            else if (kind == 2 || kind == 3) model.lock(a, b, c, r >> 160);
            else if (kind == 4) model.unlock(a, b, c);
            else if (kind == 5) model.expire(a, b, c);
            else if (kind == 6) model.register(a, b, c);
            else if (kind == 7) model.warp(a);
            else if (kind == 8) model.updateClaim(a, b);
            else model.close(a, b, c, r >> 160);
        }
        for (uint256 pair; pair < model.PAIRS(); ++pair) {
            model.close(pair, seed >> pair, seed >> (8 + pair), seed >> (16 + pair));
            model.updateClaim(pair, seed >> (24 + pair));
            model.settle(pair);
        }
    }

    function testFuzz_model_anHonestSideNeverLoses(uint256 seed) public {
        run(seed);
        assertEq(model.violations(), 0, model.lastViolation());
        assertGt(model.payoutChecks(), 0, "every history ends in settles");
    }

    /// The fuzz test above is only as good as the cases its histories reach: over fixed seeds,
    /// every case happens.
    function test_model_reachesEveryCase() public {
        for (uint256 seed = 1; seed <= 24; ++seed) {
            run(seed);
        }
        assertEq(model.violations(), 0, model.lastViolation());
        assertGt(model.locksMade(), 0, "locks");
        assertGt(model.unlocks(), 0, "unlocks");
        assertGt(model.expiries(), 0, "expiries after the registry check");
        assertGt(model.lateRegistrations(), 0, "registrations at or after expiry");
        assertGt(model.cheatingCloses(), 0, "cheating closes");
        assertGt(model.oldProofsSubmitted(), 0, "old proofs submitted");
        assertGt(model.evidenceAccepted(), 0, "evidence");
        assertGt(model.locksClaimedAtSettle(), 0, "locks paid at settle");
        assertGt(model.droppedLockPenalties(), 0, "dropped claimable locks penalized");
        assertGt(model.honestCloserChecks(), 0, "honest closers checked");
        assertGt(model.honestNonCloserChecks(), 0, "honest non-closers checked");
        assertGt(model.phiComparisons(), 0, "Phi compared along honest sequences");
    }
}
