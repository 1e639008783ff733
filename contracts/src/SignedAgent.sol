// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC2771Recipient} from "./interfaces/IERC2771Recipient.sol";
import {SignatureRules} from "./libraries/SignatureRules.sol";

/// @title SignedAgent: the "signed authorized payment agent"
/// @notice An ERC-2771 forwarder whose relayer is paid in SMT. A user holding no ETH signs an
/// `AgentRequest`; a relayer submits it, pays the gas, and receives the signed fee from the
/// user in the same transaction. If the forwarded call fails, everything reverts, so a user
/// never pays for an operation that did not happen.
/// @dev Immutable and ownerless. Nonces are unordered (a used-bit per nonce) so requests signed
/// offline can be submitted in any order.
contract SignedAgent is EIP712, ReentrancyGuardTransient {
    /// @notice A request signed by `from`.
    /// @param from The user on whose behalf the call is made (appended to `data`, ERC-2771).
    /// @param agent The only relayer allowed to submit it, or `address(0)` for any.
    /// @param target The contract called; it must trust this agent.
    /// @param data The calldata for `target`.
    /// @param gas The exact gas forwarded to `target`.
    /// @param feeToken The token the fee is paid in; it must trust this agent when `fee > 0`.
    /// @param fee The fee paid by `from` to the submitting relayer.
    /// @param nonce An unordered nonce of `from`.
    /// @param deadline The last timestamp at which the request may execute.
    struct AgentRequest {
        address from;
        address agent;
        address target;
        bytes data;
        uint256 gas;
        address feeToken;
        uint256 fee;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice EIP-712 type hash of `AgentRequest`.
    bytes32 public constant AGENT_REQUEST_TYPEHASH = keccak256(
        "AgentRequest(address from,address agent,address target,bytes data,uint256 gas,address feeToken,uint256 fee,uint256 nonce,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of the relayable cancel.
    bytes32 public constant CANCEL_REQUEST_TYPEHASH = keccak256("CancelRequest(address from,uint256 nonce)");

    /// @dev Gas kept aside for the CALL itself (cold account access, memory) when checking
    /// that the target can receive all of `request.gas`.
    uint256 private constant CALL_GAS_MARGIN = 10_000;

    // Bit `nonce & 255` of word `nonce >> 8`: neighbouring nonces share a slot, so a user's
    // second request pays a warm-ish 5k for its nonce instead of a fresh 22k.
    mapping(address user => mapping(uint256 word => uint256 bits)) private _usedNonces;

    /// @notice `block.timestamp` is past the request's deadline.
    error RequestExpired(uint256 deadline);
    /// @notice The request names another relayer.
    error AgentNotAllowed(address agent, address sender);
    /// @notice The nonce was used or canceled.
    error NonceAlreadyUsed(address from, uint256 nonce);
    /// @notice The target is this agent, has no code, or does not trust this agent.
    error InvalidTarget(address target);
    /// @notice The fee token has no code or does not trust this agent.
    error InvalidFeeToken(address feeToken);
    /// @notice The transaction carries too little gas for the call to receive `gas`.
    error InsufficientGas(uint256 gas);
    /// @notice The forwarded call reverted; `reason` is its revert data.
    error CallFailed(bytes reason);
    /// @notice The fee transfer failed or returned false.
    error FeePaymentFailed(address feeToken, address from, uint256 fee);

    /// @notice A request was executed and its fee paid to `relayer`.
    event RequestExecuted(
        address indexed from, uint256 indexed nonce, address indexed relayer, address target, uint256 fee
    );
    /// @notice A nonce was burnt before use.
    event RequestCanceled(address indexed from, uint256 indexed nonce);

    constructor() EIP712("SmartMesh SignedAgent", "1") {}

    /// @notice Executes `request` on behalf of `request.from` and pays its fee to the caller.
    /// @param request The signed request.
    /// @param signature `request.from`'s 65-byte EIP-712 signature (low `s`).
    /// @return result The forwarded call's return data.
    function execute(AgentRequest calldata request, bytes calldata signature)
        external
        nonReentrant
        returns (bytes memory result)
    {
        if (block.timestamp > request.deadline) revert RequestExpired(request.deadline);
        if (request.agent != address(0) && request.agent != msg.sender) {
            revert AgentNotAllowed(request.agent, msg.sender);
        }
        if (!_trustsThisAgent(request.target)) revert InvalidTarget(request.target);
        if (request.fee != 0 && request.feeToken != request.target && !_trustsThisAgent(request.feeToken)) {
            revert InvalidFeeToken(request.feeToken);
        }
        SignatureRules.requireSigner(_hashTypedDataV4(_hashRequest(request)), signature, request.from);
        _useNonce(request.from, request.nonce);

        bytes memory forwarded = abi.encodePacked(request.data, request.from);
        // Under the 63/64 rule a relayer sending too little gas would starve the call while
        // this frame keeps its 1/64. Refuse up front unless the target can get all of
        // `request.gas` (the margin covers the CALL's own cost), so that even a target that
        // catches its own out-of-gas cannot be starved into a paid no-op.
        uint256 available = gasleft();
        if (request.gas > available || available - request.gas < request.gas / 63 + CALL_GAS_MARGIN) {
            revert InsufficientGas(request.gas);
        }
        bool success;
        (success, result) = request.target.call{gas: request.gas}(forwarded);
        // OpenZeppelin's check, kept as a second line: a starved call that did use all its gas.
        if (gasleft() <= request.gas / 63) {
            assembly ("memory-safe") {
                invalid()
            }
        }
        if (!success) revert CallFailed(result);

        if (request.fee != 0) _payFee(request.feeToken, request.from, request.fee);
        emit RequestExecuted(request.from, request.nonce, msg.sender, request.target, request.fee);
    }

    /// @notice Burns one of the caller's nonces, withdrawing a request it signed.
    function cancel(uint256 nonce) external {
        _useNonce(msg.sender, nonce);
        emit RequestCanceled(msg.sender, nonce);
    }

    /// @notice Burns `from`'s nonce on `from`'s signature, so a user without ETH can withdraw a
    /// request it signed (for example a close it no longer wants) through any relayer.
    function cancelWithSig(address from, uint256 nonce, bytes calldata signature) external {
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(CANCEL_REQUEST_TYPEHASH, from, nonce)));
        SignatureRules.requireSigner(digest, signature, from);
        _useNonce(from, nonce);
        emit RequestCanceled(from, nonce);
    }

    /// @notice Whether `from` has used or canceled `nonce`.
    function nonceUsed(address from, uint256 nonce) external view returns (bool) {
        // forge-lint: disable-next-line(incorrect-shift) a one-bit mask, shifted by the bit index
        return _usedNonces[from][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice The EIP-712 digest `request.from` signs.
    function hashRequest(AgentRequest calldata request) external view returns (bytes32) {
        return _hashTypedDataV4(_hashRequest(request));
    }

    /// @notice The EIP-712 digest of a relayable cancel.
    function hashCancel(address from, uint256 nonce) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(CANCEL_REQUEST_TYPEHASH, from, nonce)));
    }

    /// @notice This agent's EIP-712 domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _useNonce(address from, uint256 nonce) private {
        // forge-lint: disable-next-line(incorrect-shift) a one-bit mask, shifted by the bit index
        uint256 bit = 1 << (nonce & 0xff);
        uint256 word = _usedNonces[from][nonce >> 8];
        if (word & bit != 0) revert NonceAlreadyUsed(from, nonce);
        _usedNonces[from][nonce >> 8] = word | bit;
    }

    function _payFee(address feeToken, address from, uint256 fee) private {
        // An ERC-2771 call: the token reads `from` from the calldata's last 20 bytes.
        (bool success, bytes memory returned) =
            feeToken.call(abi.encodePacked(abi.encodeWithSelector(0xa9059cbb, msg.sender, fee), from));
        if (!success || (returned.length != 0 && (returned.length != 32 || !abi.decode(returned, (bool))))) {
            revert FeePaymentFailed(feeToken, from, fee);
        }
    }

    function _trustsThisAgent(address account) private view returns (bool) {
        if (account == address(this) || account.code.length == 0) return false;
        (bool success, bytes memory returned) =
            account.staticcall(abi.encodeCall(IERC2771Recipient.isTrustedForwarder, (address(this))));
        return success && returned.length == 32 && abi.decode(returned, (bool));
    }

    function _hashRequest(AgentRequest calldata request) private pure returns (bytes32) {
        return keccak256(
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
    }
}
