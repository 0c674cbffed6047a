"""``encoding: "jsonParsed"`` for ``perpkit localnet``, in agave's shapes.

Accounts (agave's ``solana-account-decoder``): SPL Token accounts and mints
(``{"program": "spl-token", "parsed": {"type": "account", "info": ...}, "space": 165}``),
Token-2022 ones (``"spl-token-2022"``, same info) without extensions, nonce
accounts and the BPF upgradeable loader's program, program-data and buffer
accounts (``"bpf-upgradeable-loader"``); anything else is not parsable, and the
caller falls back to base64 as agave does (a plain system account too: agave's
system parser only knows nonce accounts).  A Token-2022 account or mint *with*
extensions (longer than the base layout) is not parsed here: it comes back in
base64, where agave would list its ``extensions``.

Instructions (agave's ``solana-transaction-status``): System, SPL Token (both
token programs, as ``"spl-token"``) and the Associated Token Account program.
Agave has no Compute Budget parser, so those instructions, like every other
program's (and any instruction that does not decode), come out partially
decoded: ``{"programId", "accounts", "data" (base58), "stackHeight"}``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from perpkit.base58 import b58encode

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
BPF_LOADER_UPGRADEABLE_ID = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
ADDRESS_LOOKUP_TABLE_PROGRAM_ID = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
LOOKUP_TABLE_META_SIZE = 56
TOKEN_ACCOUNT_LEN = 165
MINT_LEN = 82
NONCE_LEN = 80

Lookup = Callable[[Pubkey], Account | None]


NotParsable = ValueError
"""Raised where the data does not decode: the caller falls back as agave does."""


# -- amounts ------------------------------------------------------------------------


def amount_string(amount: int, decimals: int) -> str:
    """agave's ``real_number_string_trimmed``: exact, without trailing zeros."""
    if decimals == 0:
        return str(amount)
    whole, frac = divmod(amount, 10**decimals)
    text = f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".")
    return text


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """``UiTokenAmount``: {uiAmount, decimals, amount, uiAmountString}."""
    return {
        "uiAmount": amount / 10**decimals,
        "decimals": decimals,
        "amount": str(amount),
        "uiAmountString": amount_string(amount, decimals),
    }


def _coption_key(data: bytes, offset: int) -> Pubkey | None:
    tag = int.from_bytes(data[offset : offset + 4], "little")
    return Pubkey(data[offset + 4 : offset + 36]) if tag == 1 else None


# -- accounts -----------------------------------------------------------------------


def mint_decimals(mint: Account | None) -> int | None:
    if mint is None or mint.owner not in TOKEN_PROGRAMS or len(mint.data) < MINT_LEN:
        return None
    return bytes(mint.data)[44]


def token_account_fields(data: bytes) -> tuple[Pubkey, Pubkey, int, Pubkey | None] | None:
    """(mint, owner, amount, delegate) of an initialized token account's data, else None."""
    if len(data) < TOKEN_ACCOUNT_LEN or data[108] == 0:
        return None
    return Pubkey(data[:32]), Pubkey(data[32:64]), int.from_bytes(data[64:72], "little"), _coption_key(data, 72)


def parse_token_account_info(data: bytes, decimals: int) -> dict[str, Any]:
    fields = token_account_fields(data)
    if fields is None or data[108] > 2:
        raise NotParsable("not an initialized token account")
    mint, owner, amount, delegate = fields
    info: dict[str, Any] = {"mint": str(mint), "owner": str(owner), "tokenAmount": ui_token_amount(amount, decimals)}
    if delegate is not None:
        info["delegate"] = str(delegate)
    info["state"] = "initialized" if data[108] == 1 else "frozen"
    native = int.from_bytes(data[109:113], "little") == 1
    info["isNative"] = native
    if native:
        info["rentExemptReserve"] = ui_token_amount(int.from_bytes(data[113:121], "little"), decimals)
    if delegate is not None:
        info["delegatedAmount"] = ui_token_amount(int.from_bytes(data[121:129], "little"), decimals)
    close_authority = _coption_key(data, 129)
    if close_authority is not None:
        info["closeAuthority"] = str(close_authority)
    return info


def parse_mint_info(data: bytes) -> dict[str, Any]:
    if len(data) < MINT_LEN or data[45] == 0:
        raise NotParsable("not an initialized mint")
    authority, freeze = _coption_key(data, 0), _coption_key(data, 46)
    return {
        "mintAuthority": None if authority is None else str(authority),
        "supply": str(int.from_bytes(data[36:44], "little")),
        "decimals": data[44],
        "isInitialized": True,
        "freezeAuthority": None if freeze is None else str(freeze),
    }


def parse_account(account: Account, lookup: Lookup) -> dict[str, Any]:
    """agave's ``ParsedAccount`` {program, parsed, space}; NotParsable when agave has no parser for it."""
    data = bytes(account.data)
    owner = account.owner
    if owner in TOKEN_PROGRAMS:
        program = "spl-token" if owner == TOKEN_PROGRAM_ID else "spl-token-2022"
        # Token-2022 accounts with extensions are longer; only the base layouts are parsed here.
        if len(data) == TOKEN_ACCOUNT_LEN:
            decimals = mint_decimals(lookup(Pubkey(data[:32])))
            if decimals is None:
                raise NotParsable("the token account's mint is missing")  # agave: AdditionalDataMissing
            parsed = {"type": "account", "info": parse_token_account_info(data, decimals)}
        elif len(data) == MINT_LEN:
            parsed = {"type": "mint", "info": parse_mint_info(data)}
        else:
            raise NotParsable("not a token account or mint")
        return {"program": program, "parsed": parsed, "space": len(data)}
    if owner == SYSTEM_PROGRAM_ID:
        return {"program": "nonce", "parsed": _parse_nonce(data), "space": len(data)}
    if owner == BPF_LOADER_UPGRADEABLE_ID:
        return {"program": "bpf-upgradeable-loader", "parsed": parse_bpf_upgradeable(data), "space": len(data)}
    raise NotParsable("no parser for this owner")


def parse_bpf_upgradeable(data: bytes) -> dict[str, Any]:
    """agave's ``parse_bpf_upgradeable_loader``: the bincode ``UpgradeableLoaderState`` (u32 tag: 0
    uninitialized, 1 buffer {authority: Option<Pubkey>}, 2 program {programdata}, 3 programData {slot: u64,
    authority}); a buffer's and a program-data account's bytes after the metadata go in ``info.data`` as
    [base64, "base64"].  As agave, with no authority the data starts right after the ``None`` byte."""
    if len(data) < 4:
        raise NotParsable("not an upgradeable loader account")
    (tag,) = struct.unpack_from("<I", data)
    if tag == 0:
        return {"type": "uninitialized"}
    if tag == 2:
        return {"type": "program", "info": {"programData": _key(data, 4)}}
    if tag == 1:
        authority, rest = _option_key(data, 4)
        return {"type": "buffer", "info": {"authority": authority, "data": _base64(data[rest:])}}
    if tag == 3:
        if len(data) < 12:
            raise NotParsable("short program-data account")
        (slot,) = struct.unpack_from("<Q", data, 4)
        authority, rest = _option_key(data, 12)
        return {"type": "programData", "info": {"slot": slot, "authority": authority, "data": _base64(data[rest:])}}
    raise NotParsable(f"upgradeable loader state {tag}")


def _option_key(data: bytes, offset: int) -> tuple[str | None, int]:
    """A bincode ``Option<Pubkey>`` at ``offset``: (the key or None, the offset after it)."""
    if offset >= len(data) or data[offset] > 1:
        raise NotParsable("bad Option<Pubkey>")
    if data[offset] == 0:
        return None, offset + 1
    return _key(data, offset + 1), offset + 33


def _base64(data: bytes) -> list[str]:
    return [base64.b64encode(data).decode(), "base64"]


def lookup_table_addresses(account: Account | None) -> list[Pubkey]:
    """The addresses an address lookup table holds (after its 56-byte metadata); none for anything else."""
    if account is None or account.owner != ADDRESS_LOOKUP_TABLE_PROGRAM_ID:
        return []
    data = bytes(account.data)
    if len(data) < LOOKUP_TABLE_META_SIZE or data[:4] != b"\1\0\0\0":  # ProgramState::LookupTable
        return []
    return [Pubkey(data[i : i + 32]) for i in range(LOOKUP_TABLE_META_SIZE, len(data) - 31, 32)]


def _parse_nonce(data: bytes) -> dict[str, Any]:
    # bincode nonce::Versions: u32 version (0 legacy, 1 current), u32 state (0 uninitialized, 1 initialized),
    # then authority (32), durable nonce (32), lamports per signature (u64).
    if len(data) < 8 or (len(data) != NONCE_LEN and data[4:8] != b"\0\0\0\0"):
        raise NotParsable("not a nonce account")
    version, state = struct.unpack_from("<II", data)
    if version > 1 or state > 1:
        raise NotParsable("not a nonce account")
    if state == 0:
        return {"type": "uninitialized"}
    if len(data) < NONCE_LEN:
        raise NotParsable("short nonce account")
    return {
        "type": "initialized",
        "info": {
            "authority": str(Pubkey(data[8:40])),
            "blockhash": b58encode(data[40:72]),
            "feeCalculator": {"lamportsPerSignature": str(int.from_bytes(data[72:80], "little"))},
        },
    }


# -- instructions ---------------------------------------------------------------------


def parse_instruction(
    program_id: Pubkey, accounts: Sequence[int], data: bytes, keys: Sequence[Pubkey], stack_height: int | None
) -> dict[str, Any]:
    """A ``ParsedInstruction`` {program, programId, parsed, stackHeight}, or agave's
    ``UiPartiallyDecodedInstruction`` {programId, accounts, data, stackHeight}."""
    try:
        names = [str(keys[i]) for i in accounts]
    except IndexError:
        names = []
    parser = _PARSERS.get(program_id)
    if parser is not None:
        try:
            program, parsed = parser(data, names)
            return {"program": program, "programId": str(program_id), "parsed": parsed, "stackHeight": stack_height}
        except (NotParsable, IndexError, struct.error):
            pass
    return {"programId": str(program_id), "accounts": names, "data": b58encode(data), "stackHeight": stack_height}


def _need(accounts: Sequence[str], n: int) -> None:
    if len(accounts) < n:
        raise NotParsable("instruction key mismatch")


def _seed(data: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    end = offset + 8 + length
    if end > len(data):
        raise NotParsable("short seed")
    return data[offset + 8 : end].decode(), end


def _key(data: bytes, offset: int) -> str:
    if offset + 32 > len(data):
        raise NotParsable("short key")
    return str(Pubkey(data[offset : offset + 32]))


def _parse_system(data: bytes, a: Sequence[str]) -> tuple[str, dict[str, Any]]:
    (tag,) = struct.unpack_from("<I", data)
    kind: str
    info: dict[str, Any]
    if tag == 0:  # CreateAccount
        _need(a, 2)
        lamports, space = struct.unpack_from("<QQ", data, 4)
        kind, info = (
            "createAccount",
            {"source": a[0], "newAccount": a[1], "lamports": lamports, "space": space, "owner": _key(data, 20)},
        )
    elif tag == 1:
        _need(a, 1)
        kind, info = "assign", {"account": a[0], "owner": _key(data, 4)}
    elif tag == 2:
        _need(a, 2)
        (lamports,) = struct.unpack_from("<Q", data, 4)
        kind, info = "transfer", {"source": a[0], "destination": a[1], "lamports": lamports}
    elif tag == 3:
        _need(a, 2)
        base = _key(data, 4)
        seed, at = _seed(data, 36)
        lamports, space = struct.unpack_from("<QQ", data, at)
        kind, info = (
            "createAccountWithSeed",
            {
                "source": a[0],
                "newAccount": a[1],
                "base": base,
                "seed": seed,
                "lamports": lamports,
                "space": space,
                "owner": _key(data, at + 16),
            },
        )
    elif tag == 4:
        _need(a, 3)
        kind, info = "advanceNonce", {"nonceAccount": a[0], "recentBlockhashesSysvar": a[1], "nonceAuthority": a[2]}
    elif tag == 5:
        _need(a, 5)
        (lamports,) = struct.unpack_from("<Q", data, 4)
        kind, info = (
            "withdrawFromNonce",
            {
                "nonceAccount": a[0],
                "destination": a[1],
                "recentBlockhashesSysvar": a[2],
                "rentSysvar": a[3],
                "nonceAuthority": a[4],
                "lamports": lamports,
            },
        )
    elif tag == 6:
        _need(a, 3)
        kind, info = (
            "initializeNonce",
            {
                "nonceAccount": a[0],
                "recentBlockhashesSysvar": a[1],
                "rentSysvar": a[2],
                "nonceAuthority": _key(data, 4),
            },
        )
    elif tag == 7:
        _need(a, 2)
        kind, info = "authorizeNonce", {"nonceAccount": a[0], "nonceAuthority": a[1], "newAuthorized": _key(data, 4)}
    elif tag == 8:
        _need(a, 1)
        (space,) = struct.unpack_from("<Q", data, 4)
        kind, info = "allocate", {"account": a[0], "space": space}
    elif tag == 9:
        _need(a, 2)
        base = _key(data, 4)
        seed, at = _seed(data, 36)
        (space,) = struct.unpack_from("<Q", data, at)
        kind, info = (
            "allocateWithSeed",
            {"account": a[0], "base": base, "seed": seed, "space": space, "owner": _key(data, at + 8)},
        )
    elif tag == 10:
        _need(a, 2)
        base = _key(data, 4)
        seed, at = _seed(data, 36)
        kind, info = "assignWithSeed", {"account": a[0], "base": base, "seed": seed, "owner": _key(data, at)}
    elif tag == 11:
        _need(a, 3)
        (lamports,) = struct.unpack_from("<Q", data, 4)
        seed, at = _seed(data, 12)
        kind, info = (
            "transferWithSeed",
            {
                "source": a[0],
                "sourceBase": a[1],
                "destination": a[2],
                "lamports": lamports,
                "sourceSeed": seed,
                "sourceOwner": _key(data, at),
            },
        )
    elif tag == 12:
        _need(a, 1)
        kind, info = "upgradeNonce", {"nonceAccount": a[0]}
    else:
        raise NotParsable(f"system instruction {tag}")
    return "system", {"type": kind, "info": info}


def _signers(info: dict[str, Any], a: Sequence[str], index: int, name: str) -> dict[str, Any]:
    """agave's ``parse_signers``: one authority, or a multisig and its signers."""
    _need(a, index + 1)
    if len(a) > index + 1:
        info["multisig" + name[0].upper() + name[1:]] = a[index]
        info["signers"] = list(a[index + 1 :])
    else:
        info[name] = a[index]
    return info


_AUTHORITY_TYPES = ["mintTokens", "freezeAccount", "accountOwner", "closeAccount"]
_EXTENSION_TYPES = [
    "uninitialized",
    "transferFeeConfig",
    "transferFeeAmount",
    "mintCloseAuthority",
    "confidentialTransferMint",
    "confidentialTransferAccount",
    "defaultAccountState",
    "immutableOwner",
    "memoTransfer",
    "nonTransferable",
    "interestBearingConfig",
    "cpiGuard",
    "permanentDelegate",
    "nonTransferableAccount",
    "transferHook",
    "transferHookAccount",
]


def _parse_token(data: bytes, a: Sequence[str]) -> tuple[str, dict[str, Any]]:
    if not data:
        raise NotParsable("empty token instruction")
    tag = data[0]

    def amount() -> int:
        return int(struct.unpack_from("<Q", data, 1)[0])

    def checked() -> dict[str, Any]:
        return ui_token_amount(amount(), data[9])

    info: dict[str, Any]
    if tag in (0, 20):  # InitializeMint, InitializeMint2
        _need(a, 1 if tag == 20 else 2)
        info = {"mint": a[0], "decimals": data[1], "mintAuthority": _key(data, 2)}
        if tag == 0:
            info["rentSysvar"] = a[1]
        if data[34] == 1:
            info["freezeAuthority"] = _key(data, 35)
        return "spl-token", {"type": "initializeMint" if tag == 0 else "initializeMint2", "info": info}
    if tag == 1:
        _need(a, 4)
        info = {"account": a[0], "mint": a[1], "owner": a[2], "rentSysvar": a[3]}
        return "spl-token", {"type": "initializeAccount", "info": info}
    if tag == 16:
        _need(a, 3)
        info = {"account": a[0], "mint": a[1], "owner": _key(data, 1), "rentSysvar": a[2]}
        return "spl-token", {"type": "initializeAccount2", "info": info}
    if tag == 18:
        _need(a, 2)
        info = {"account": a[0], "mint": a[1], "owner": _key(data, 1)}
        return "spl-token", {"type": "initializeAccount3", "info": info}
    if tag == 2:
        _need(a, 3)
        info = {"multisig": a[0], "rentSysvar": a[1], "signers": list(a[2:]), "m": data[1]}
        return "spl-token", {"type": "initializeMultisig", "info": info}
    table: dict[int, tuple[str, Callable[[], dict[str, Any]], int, str]] = {
        3: ("transfer", lambda: {"source": a[0], "destination": a[1], "amount": str(amount())}, 2, "authority"),
        4: ("approve", lambda: {"source": a[0], "delegate": a[1], "amount": str(amount())}, 2, "owner"),
        5: ("revoke", lambda: {"source": a[0]}, 1, "owner"),
        7: ("mintTo", lambda: {"mint": a[0], "account": a[1], "amount": str(amount())}, 2, "mintAuthority"),
        8: ("burn", lambda: {"account": a[0], "mint": a[1], "amount": str(amount())}, 2, "authority"),
        9: ("closeAccount", lambda: {"account": a[0], "destination": a[1]}, 2, "owner"),
        10: ("freezeAccount", lambda: {"account": a[0], "mint": a[1]}, 2, "freezeAuthority"),
        11: ("thawAccount", lambda: {"account": a[0], "mint": a[1]}, 2, "freezeAuthority"),
        12: (
            "transferChecked",
            lambda: {"source": a[0], "mint": a[1], "destination": a[2], "tokenAmount": checked()},
            3,
            "authority",
        ),
        13: (
            "approveChecked",
            lambda: {"source": a[0], "mint": a[1], "delegate": a[2], "tokenAmount": checked()},
            3,
            "owner",
        ),
        14: ("mintToChecked", lambda: {"mint": a[0], "account": a[1], "tokenAmount": checked()}, 2, "mintAuthority"),
        15: ("burnChecked", lambda: {"account": a[0], "mint": a[1], "tokenAmount": checked()}, 2, "authority"),
    }
    if tag in table:
        kind, build, index, name = table[tag]
        _need(a, index + 1)
        if tag in (12, 13, 14, 15) and len(data) < 10:
            raise NotParsable("short checked instruction")
        return "spl-token", {"type": kind, "info": _signers(build(), a, index, name)}
    if tag == 6:  # SetAuthority
        _need(a, 2)
        if data[1] >= len(_AUTHORITY_TYPES):
            raise NotParsable("authority type")
        authority_type = _AUTHORITY_TYPES[data[1]]
        owned = "mint" if authority_type in ("mintTokens", "freezeAccount") else "account"
        info = {owned: a[0], "authorityType": authority_type, "newAuthority": _key(data, 3) if data[2] == 1 else None}
        return "spl-token", {"type": "setAuthority", "info": _signers(info, a, 1, "authority")}
    if tag == 17:
        _need(a, 1)
        return "spl-token", {"type": "syncNative", "info": {"account": a[0]}}
    if tag == 21 and len(data) % 2 == 1:  # GetAccountDataSize, with u16 extension types
        _need(a, 1)
        info = {"mint": a[0]}
        types = [int.from_bytes(data[i : i + 2], "little") for i in range(1, len(data), 2)]
        if types:
            if max(types) >= len(_EXTENSION_TYPES):
                raise NotParsable("extension type")
            info["extensionTypes"] = [_EXTENSION_TYPES[t] for t in types]
        return "spl-token", {"type": "getAccountDataSize", "info": info}
    if tag == 22:
        _need(a, 1)
        return "spl-token", {"type": "initializeImmutableOwner", "info": {"account": a[0]}}
    raise NotParsable(f"token instruction {tag}")


def _parse_associated_token(data: bytes, a: Sequence[str]) -> tuple[str, dict[str, Any]]:
    if data not in (b"", b"\0", b"\1"):
        raise NotParsable("associated token instruction")
    _need(a, 6)
    info = {"source": a[0], "account": a[1], "wallet": a[2], "mint": a[3], "systemProgram": a[4], "tokenProgram": a[5]}
    return "spl-associated-token-account", {"type": "createIdempotent" if data == b"\1" else "create", "info": info}


_PARSERS: dict[Pubkey, Callable[[bytes, Sequence[str]], tuple[str, dict[str, Any]]]] = {
    SYSTEM_PROGRAM_ID: _parse_system,
    TOKEN_PROGRAM_ID: _parse_token,
    TOKEN_2022_PROGRAM_ID: _parse_token,
    ASSOCIATED_TOKEN_PROGRAM_ID: _parse_associated_token,
}
