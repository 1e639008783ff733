// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {SignatureRules} from "./libraries/SignatureRules.sol";

/// @title SmartMesh Token (SMT)
/// @notice A fixed-supply ERC-20 with EIP-2612 permits and EIP-3009 signed authorizations, so a
/// phone holding no ETH can pre-sign payments offline and have anyone submit them later, in any
/// order. It trusts one ERC-2771 forwarder, the SignedAgent, which lets a relayer collect its
/// fee in SMT from the user it relays for.
/// @dev Immutable: no owner, no mint after construction, no upgrade.
contract SmartMeshToken is ERC20, ERC20Permit, ERC2771Context {
    /// @notice EIP-3009 `transferWithAuthorization` type hash.
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 `receiveWithAuthorization` type hash.
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 `cancelAuthorization` type hash.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    mapping(address authorizer => mapping(bytes32 nonce => bool used)) private _authorizationUsed;

    /// @notice The authorization is not valid yet (`block.timestamp <= validAfter`).
    error AuthorizationNotYetValid(uint256 validAfter);
    /// @notice The authorization expired (`block.timestamp >= validBefore`).
    error AuthorizationExpired(uint256 validBefore);
    /// @notice The authorizer already used or canceled this nonce.
    error AuthorizationAlreadyUsed(address authorizer, bytes32 nonce);
    /// @notice `receiveWithAuthorization` was called by someone other than the payee.
    error CallerNotPayee(address caller, address payee);

    /// @notice An EIP-3009 authorization was used.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice An EIP-3009 authorization was canceled before use.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @param holder Receives the whole supply.
    /// @param supply The fixed supply in base units (mainnet SMT: 3,141,592,653 * 10**18).
    /// @param agent The SignedAgent trusted as ERC-2771 forwarder.
    constructor(address holder, uint256 supply, address agent)
        ERC20("SmartMesh Token", "SMT")
        ERC20Permit("SmartMesh Token")
        ERC2771Context(agent)
    {
        _mint(holder, supply);
    }

    /// @notice Whether `authorizer` has used or canceled `nonce` (EIP-3009).
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationUsed[authorizer][nonce];
    }

    /// @notice Moves `value` from `from` to `to` on `from`'s signed EIP-3009 authorization.
    /// @dev Anyone may submit it; front-running is harmless because the payee is fixed.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _useAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s
        );
        _transfer(from, to, value);
    }

    /// @notice Like `transferWithAuthorization`, but only the payee may submit it, so a contract
    /// paying itself cannot be front-run into a transfer it did not expect.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        if (to != _msgSender()) revert CallerNotPayee(_msgSender(), to);
        _useAuthorization(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s);
        _transfer(from, to, value);
    }

    /// @notice Burns an unused authorization nonce on the authorizer's signature.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _requireUnused(authorizer, nonce);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)));
        SignatureRules.requireSigner(digest, v, r, s, authorizer);
        _authorizationUsed[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _useAuthorization(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(validAfter);
        if (block.timestamp >= validBefore) revert AuthorizationExpired(validBefore);
        _requireUnused(from, nonce);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce)));
        SignatureRules.requireSigner(digest, v, r, s, from);
        _authorizationUsed[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
    }

    function _requireUnused(address authorizer, bytes32 nonce) private view {
        if (_authorizationUsed[authorizer][nonce]) revert AuthorizationAlreadyUsed(authorizer, nonce);
    }

    function _msgSender() internal view override(Context, ERC2771Context) returns (address) {
        return ERC2771Context._msgSender();
    }

    function _msgData() internal view override(Context, ERC2771Context) returns (bytes calldata) {
        return ERC2771Context._msgData();
    }

    function _contextSuffixLength() internal view override(Context, ERC2771Context) returns (uint256) {
        return ERC2771Context._contextSuffixLength();
    }
}
