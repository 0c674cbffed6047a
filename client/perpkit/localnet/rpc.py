"""The Solana JSON-RPC methods of ``perpkit localnet``, over a :class:`~perpkit.chain.Chain`.

Results follow the shapes of the Solana RPC API (and what solana-py's parsers
expect): ``{"context": {...}, "value": ...}`` where the real API has one,
base64/base58 encodings where it offers them, and its error codes.  Also the
surfpool cheatcodes ``surfnet_timeTravel``, ``surfnet_setAccount``,
``surfnet_pauseClock`` and ``surfnet_resumeClock``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import InnerInstruction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
)

from perpkit.backends.base import ReturnData
from perpkit.base58 import b58decode, b58encode
from perpkit.chain import (
    FAUCET_LAMPORTS,
    Chain,
    Simulation,
    TimeTravelError,
    TransactionRejected,
    TxRecord,
    writable_keys,
)
from perpkit.localnet.parsed import (
    TOKEN_PROGRAMS,
    Lookup,
    NotParsable,
    lookup_table_addresses,
    parse_account,
    parse_instruction,
    token_account_fields,
    ui_token_amount,
)
from perpkit.risk import U64_MAX
from perpkit.spl_token import TOKEN_PROGRAM_ID

API_VERSION = "2.2.0"
FEATURE_SET = 3_294_202_862

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PREFLIGHT_FAILURE = -32002
SIGNATURE_VERIFICATION_FAILURE = -32003
MIN_CONTEXT_SLOT_NOT_REACHED = -32016
UNSUPPORTED_TRANSACTION_VERSION = -32015

COMMITMENTS = {"processed", "confirmed", "finalized", "recent", "single", "singleGossip", "root", "max"}
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1_000
MAX_GET_BLOCKS_RANGE = 500_000
BLOCK_CLEANED_UP = -32001
BLOCK_NOT_AVAILABLE = -32004
SLOT_SKIPPED = -32007
MAX_ACCOUNT_DATA = 10 * 1024 * 1024  # MAX_PERMITTED_DATA_LENGTH
NUM_LARGEST_ACCOUNTS = 20


class RpcError(Exception):
    """A JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


# -- parameters ------------------------------------------------------------


class Params:
    """Positional parameters of one call, read with type checks (errors are -32602)."""

    def __init__(self, params: Any) -> None:
        if params is None:
            params = []
        if not isinstance(params, list):
            raise invalid("Invalid params: expected an array of parameters")
        self.items = params

    def _get(self, i: int, what: str, required: bool) -> Any:
        if i < len(self.items) and self.items[i] is not None:
            return self.items[i]
        if required:
            raise invalid(f"Invalid params: missing {what} (parameter {i + 1})")
        return None

    def pubkey(self, i: int, what: str = "pubkey") -> Pubkey:
        return parse_pubkey(self._get(i, what, True), what)

    def integer(self, i: int, what: str) -> int:
        value = self._get(i, what, True)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
            raise invalid(f"Invalid params: {what} must be an unsigned 64-bit integer")
        return value

    def string(self, i: int, what: str) -> str:
        value = self._get(i, what, True)
        if not isinstance(value, str):
            raise invalid(f"Invalid params: {what} must be a string")
        return value

    def array(self, i: int, what: str, required: bool = True) -> list[Any] | None:
        value = self._get(i, what, required)
        if value is not None and not isinstance(value, list):
            raise invalid(f"Invalid params: {what} must be an array")
        return value

    def config(self, i: int) -> dict[str, Any]:
        value = self._get(i, "configuration", False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise invalid("Invalid params: the configuration must be an object")
        commitment = value.get("commitment")
        if commitment is not None and commitment not in COMMITMENTS:
            raise invalid(f"Invalid params: unknown commitment {commitment!r}")
        return value


def parse_pubkey(value: Any, what: str = "pubkey") -> Pubkey:
    if not isinstance(value, str):
        raise invalid(f"Invalid param: {what} must be a base-58 string")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise invalid(f"Invalid param: Invalid {what} {value!r}") from None


def decode_binary(text: Any, encoding: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise invalid(f"Invalid params: {what} must be a string")
    try:
        if encoding == "base58":
            return b58decode(text)
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise invalid(f"Invalid params: {what} is not valid {encoding}") from None
    raise invalid(f"Invalid params: unsupported encoding {encoding!r} (use base58 or base64)")


def parse_filters(config: dict[str, Any]) -> list[Callable[[bytes], bool]]:
    """The checks on account data that a config's ``filters`` asks for (getProgramAccounts, programSubscribe).

    At most 4 filters, each ``{"dataSize": n}`` or ``{"memcmp": {"offset": n, "bytes": ..., "encoding": ...}}``
    (base58 by default, or base64; at most 128 bytes).  Raises :class:`RpcError` (invalid params) otherwise.
    """
    filters = config.get("filters") or []
    if not isinstance(filters, list) or len(filters) > 4:
        raise invalid("Invalid params: filters must be an array of at most 4 filters")
    return [parse_filter(f) for f in filters]


def parse_filter(spec: Any) -> Callable[[bytes], bool]:
    """One ``dataSize`` or ``memcmp`` filter as a check on account data."""
    if isinstance(spec, dict) and "dataSize" in spec and isinstance(spec["dataSize"], int):
        size = spec["dataSize"]
        return lambda data: len(data) == size
    if isinstance(spec, dict) and isinstance(spec.get("memcmp"), dict):
        memcmp = spec["memcmp"]
        offset = memcmp.get("offset")
        if not isinstance(offset, int) or offset < 0:
            raise invalid("Invalid params: memcmp.offset must be a non-negative integer")
        wanted = decode_binary(memcmp.get("bytes"), memcmp.get("encoding", "base58"), "memcmp.bytes")
        if len(wanted) > 128:
            raise invalid("Invalid params: memcmp.bytes is longer than 128 bytes")
        return lambda data: data[offset : offset + len(wanted)] == wanted
    raise invalid(f"Invalid params: unsupported filter {spec!r}")


# -- encodings of results --------------------------------------------------------


def error_json(err: Any) -> Any:
    """A transaction error as the RPC API writes it, e.g. {"InstructionError": [0, {"Custom": 6015}]}."""
    if err is None:
        return None
    if isinstance(err, TransactionErrorInstructionError):
        return {"InstructionError": [err.index, _instruction_error_json(err.err)]}
    if isinstance(err, TransactionErrorFieldless):
        return str(err).rsplit(".", 1)[-1]
    name = type(err).__name__.removeprefix("TransactionError")
    return {name: json.loads(err.to_json())}


def _instruction_error_json(inner: Any) -> Any:
    # Built here, not with solders' to_json: solders 0.29 writes a custom error
    # as a bare number ([0, 6015]), which no RPC client (solders' own included) parses.
    if isinstance(inner, InstructionErrorCustom):
        return {"Custom": inner.code}
    if isinstance(inner, InstructionErrorFieldless):
        return str(inner).rsplit(".", 1)[-1]
    return json.loads(TransactionErrorInstructionError(0, inner).to_json())[1]  # BorshIoError and the like


_DESCRIPTIONS = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "SignatureFailure": "Transaction did not pass signature verification",
}


def describe_error(err: Any) -> str:
    """The error as a sentence, in the runtime's words where they are well known."""
    if isinstance(err, TransactionErrorInstructionError):
        inner = _instruction_error_json(err.err)
        if isinstance(inner, dict) and "Custom" in inner:
            text = f"custom program error: {inner['Custom']:#x}"
        else:
            text = inner if isinstance(inner, str) else json.dumps(inner)
        return f"Error processing Instruction {err.index}: {text}"
    encoded = error_json(err)
    return _DESCRIPTIONS.get(encoded, str(encoded)) if isinstance(encoded, str) else json.dumps(encoded)


def rent_epoch(account: Account) -> int:
    """u64::MAX for a rent-exempt account (agave's RENT_EXEMPT_RENT_EPOCH), the stored epoch otherwise."""
    exempt = account.lamports >= (128 + len(account.data)) * 6_960  # default Rent: 3,480 lamports/byte-year x 2
    return U64_MAX if exempt else account.rent_epoch


def encode_account(
    account: Account, config: dict[str, Any], default: str = "binary", lookup: Lookup | None = None
) -> dict[str, Any]:
    """A ``UiAccount``; ``lookup`` finds a token account's mint for ``jsonParsed`` (without it, base64)."""
    encoding = config.get("encoding", default)
    if encoding == "jsonParsed" and lookup is not None:
        try:
            parsed = parse_account(account, lookup)
        except NotParsable:
            pass
        else:
            return {**encode_account(account, {"encoding": "base64"}), "data": parsed}
    data = bytes(account.data)
    data_slice = config.get("dataSlice")
    if data_slice is not None:
        if not isinstance(data_slice, dict) or not all(
            isinstance(data_slice.get(k), int) and data_slice[k] >= 0 for k in ("offset", "length")
        ):
            raise invalid("Invalid params: dataSlice needs non-negative offset and length")
        data = data[data_slice["offset"] : data_slice["offset"] + data_slice["length"]]
    encoded: Any
    if encoding in ("base64", "jsonParsed"):  # jsonParsed falls back to base64, as the RPC does
        encoded = [base64.b64encode(data).decode(), "base64"]
    elif encoding in ("base58", "binary"):
        if len(data) > 128:
            raise RpcError(
                INVALID_REQUEST,
                "Encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding.",
            )
        encoded = b58encode(data) if encoding == "binary" else [b58encode(data), "base58"]
    else:
        raise invalid(f"Invalid params: unsupported encoding {encoding!r}")
    return {
        "data": encoded,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": rent_epoch(account),
        "space": len(account.data),
    }


def encode_inner_instructions(inner: list[list[InnerInstruction]]) -> list[dict[str, Any]]:
    """CPIs per top-level instruction, as ``meta.innerInstructions`` lists them (only non-empty groups)."""
    encoded = []
    for index, group in enumerate(inner):
        if not group:
            continue
        instructions = []
        for item in group:
            compiled = item.instruction()
            stack_height = json.loads(item.to_json()).get("stackHeight")
            instructions.append(
                {
                    "programIdIndex": compiled.program_id_index,
                    "accounts": list(bytes(compiled.accounts)),
                    "data": b58encode(bytes(compiled.data)),
                    "stackHeight": stack_height,
                }
            )
        encoded.append({"index": index, "instructions": instructions})
    return encoded


def encode_return_data(return_data: ReturnData | None) -> dict[str, Any] | None:
    """Return data as agave's ``UiTransactionReturnData``: base-58 program id, data as [base64, "base64"]."""
    if return_data is None:
        return None
    return {
        "programId": str(return_data.program_id),
        "data": [base64.b64encode(return_data.data).decode(), "base64"],
    }


def encode_simulation(sim: Simulation, accounts: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """An ``RpcSimulateTransactionResult``: simulateTransaction's value and a preflight failure's error data.

    Agave serialises every field, so a missing one is ``null`` (``returnData`` too).
    """
    return {
        "err": error_json(sim.err),
        "logs": sim.logs,
        "accounts": accounts,
        "unitsConsumed": sim.compute_units,
        "returnData": encode_return_data(sim.return_data),
        "innerInstructions": None,
        "replacementBlockhash": None,
    }


def encode_transaction(tx: VersionedTransaction, encoding: str) -> Any:
    raw = bytes(tx)
    if encoding == "base64":
        return [base64.b64encode(raw).decode(), "base64"]
    if encoding == "base58":
        return [b58encode(raw), "base58"]
    message = tx.message
    header = message.header
    body: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": ix.program_id_index,
                "accounts": list(bytes(ix.accounts)),
                "data": b58encode(bytes(ix.data)),
                "stackHeight": None,
            }
            for ix in message.instructions
        ],
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = _lookups_json(message)
    return {"signatures": [str(s) for s in tx.signatures], "message": body}


def loaded_addresses(message: Message | MessageV0, lookup: Lookup) -> tuple[list[Pubkey], list[Pubkey]]:
    """The (writable, readonly) addresses a v0 message loads through its lookup tables; none for legacy.

    Read from the tables as they are now: a table only ever appends, so an index
    keeps its address, but a table closed since the transaction gives nothing."""
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    if isinstance(message, MessageV0):
        for table in message.address_table_lookups:
            entries = lookup_table_addresses(lookup(table.account_key))
            writable += [entries[i] for i in bytes(table.writable_indexes) if i < len(entries)]
            readonly += [entries[i] for i in bytes(table.readonly_indexes) if i < len(entries)]
    return writable, readonly


def account_keys(message: Message | MessageV0, lookup: Lookup) -> list[Pubkey]:
    """All the keys a transaction uses, in the runtime's order: static, loaded writable, loaded readonly."""
    writable, readonly = loaded_addresses(message, lookup)
    return [*message.account_keys, *writable, *readonly]


def loaded_addresses_json(message: Message | MessageV0, lookup: Lookup) -> dict[str, list[str]]:
    """``meta.loadedAddresses``: agave's ``UiLoadedAddresses`` {writable, readonly}."""
    writable, readonly = loaded_addresses(message, lookup)
    return {"writable": [str(k) for k in writable], "readonly": [str(k) for k in readonly]}


def _lookups_json(message: MessageV0) -> list[dict[str, Any]]:
    """A v0 message's address-table lookups, as ``getTransaction`` writes them."""
    return [
        {
            "accountKey": str(lookup.account_key),
            "writableIndexes": list(bytes(lookup.writable_indexes)),
            "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
        }
        for lookup in message.address_table_lookups
    ]


# -- the methods ------------------------------------------------------------------


class RpcMethods:
    """Method name -> handler(params) over one chain."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.handlers: dict[str, Callable[[Params], Any]] = {
            "getAccountInfo": self.get_account_info,
            "getBalance": self.get_balance,
            "getBlockHeight": self.get_block_height,
            "getEpochInfo": self.get_epoch_info,
            "getEpochSchedule": self.get_epoch_schedule,
            "getFeeForMessage": self.get_fee_for_message,
            "getGenesisHash": self.get_genesis_hash,
            "getHealth": self.get_health,
            "getIdentity": self.get_identity,
            "getLargestAccounts": self.get_largest_accounts,
            "getLatestBlockhash": self.get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance_for_rent_exemption,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
            "getSignatureStatuses": self.get_signature_statuses,
            "getSlot": self.get_slot,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTransaction": self.get_transaction,
            "getTransactionCount": self.get_transaction_count,
            "getBlock": self.get_block,
            "getBlockTime": self.get_block_time,
            "getBlocks": self.get_blocks,
            "getBlocksWithLimit": self.get_blocks_with_limit,
            "getFirstAvailableBlock": self.get_first_available_block,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getStakeMinimumDelegation": self.get_stake_minimum_delegation,
            "getSupply": self.get_supply,
            "getTokenAccountsByDelegate": self.get_token_accounts_by_delegate,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenSupply": self.get_token_supply,
            "getVersion": self.get_version,
            "isBlockhashValid": self.is_blockhash_valid,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "surfnet_timeTravel": self.time_travel,
            "surfnet_setAccount": self.set_account,
            "surfnet_pauseClock": self.pause_clock,
            "surfnet_resumeClock": self.resume_clock,
        }
        from perpkit.localnet.cheatcodes import install  # surfnet_setTokenAccount, _resetAccount, _getSurfnetInfo

        install(self)

    def call(self, method: str, params: Any) -> Any:
        handler = self.handlers.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        return handler(Params(params))

    # helpers
    def _context(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        self.chain.sync_clock()
        min_slot = (config or {}).get("minContextSlot")
        if isinstance(min_slot, int) and min_slot > self.chain.slot:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": self.chain.slot},
            )
        return {"slot": self.chain.slot, "apiVersion": API_VERSION}

    def _with_context(self, value: Any, config: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"context": self._context(config), "value": value}

    def _transaction(self, p: Params, config: dict[str, Any], default_encoding: str) -> VersionedTransaction:
        raw = decode_binary(p.string(0, "transaction"), config.get("encoding", default_encoding), "transaction")
        try:
            return VersionedTransaction.from_bytes(raw)
        except Exception as exc:  # solders raises a ValueError subclass of its own
            raise invalid(f"Invalid params: failed to deserialize transaction: {exc}") from None

    # accounts
    def get_account_info(self, p: Params) -> Any:
        address, config = p.pubkey(0), p.config(1)
        account = self.chain.get_account(address)
        value = None if account is None else encode_account(account, config, lookup=self.chain.get_account)
        return self._with_context(value, config)

    def get_multiple_accounts(self, p: Params) -> Any:
        keys = p.array(0, "pubkeys") or []
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        addresses = [parse_pubkey(k) for k in keys]
        config = p.config(1)
        values = []
        for address in addresses:
            account = self.chain.get_account(address)
            values.append(
                None if account is None else encode_account(account, config, "base64", self.chain.get_account)
            )
        return self._with_context(values, config)

    def get_program_accounts(self, p: Params) -> Any:
        program, config = p.pubkey(0, "program id"), p.config(1)
        checks = parse_filters(config)
        found = [
            {"pubkey": str(address), "account": encode_account(account, config, lookup=self.chain.get_account)}
            for address, account in self.chain.accounts_owned_by(program)
            if all(check(bytes(account.data)) for check in checks)
        ]
        if config.get("withContext"):
            return self._with_context(found, config)
        self._context(config)
        return found

    def get_balance(self, p: Params) -> Any:
        address, config = p.pubkey(0), p.config(1)
        return self._with_context(self.chain.balance(address), config)

    def get_token_account_balance(self, p: Params) -> Any:
        address, config = p.pubkey(0, "token account"), p.config(1)
        account = self.chain.get_account(address)
        data = b"" if account is None else bytes(account.data)
        if account is None or account.owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) or len(data) < 165:
            raise invalid("Invalid param: not a Token account")
        mint = self.chain.get_account(Pubkey(data[:32]))
        if mint is None or len(mint.data) < 45:
            raise invalid("Invalid param: could not find mint")
        amount = int.from_bytes(data[64:72], "little")
        decimals = bytes(mint.data)[44]
        ui = amount / 10**decimals
        text = f"{amount / 10**decimals:.{decimals}f}".rstrip("0").rstrip(".") if decimals else str(amount)
        return self._with_context(
            {"amount": str(amount), "decimals": decimals, "uiAmount": ui, "uiAmountString": text}, config
        )

    def get_minimum_balance_for_rent_exemption(self, p: Params) -> Any:
        size = p.integer(0, "data length")
        p.config(1)
        return self.chain.minimum_balance_for_rent_exemption(size)

    # cluster state
    def get_slot(self, p: Params) -> Any:
        return self._context(p.config(0))["slot"]

    def get_block_height(self, p: Params) -> Any:
        self._context(p.config(0))
        return self.chain.block_height

    def get_epoch_info(self, p: Params) -> Any:
        self._context(p.config(0))
        return self.chain.epoch_info()

    def get_epoch_schedule(self, p: Params) -> Any:
        s = self.chain.svm.get_epoch_schedule()
        return {
            "slotsPerEpoch": s.slots_per_epoch,
            "leaderScheduleSlotOffset": s.leader_schedule_slot_offset,
            "warmup": s.warmup,
            "firstNormalEpoch": s.first_normal_epoch,
            "firstNormalSlot": s.first_normal_slot,
        }

    def get_transaction_count(self, p: Params) -> Any:
        self._context(p.config(0))
        return self.chain.transaction_count

    def get_health(self, p: Params) -> Any:
        return "ok"

    def get_version(self, p: Params) -> Any:
        return {"solana-core": API_VERSION, "feature-set": FEATURE_SET}

    def get_genesis_hash(self, p: Params) -> Any:
        return str(self.chain.genesis_hash)

    def get_identity(self, p: Params) -> Any:
        return {"identity": str(self.chain.faucet_address)}

    # blockhashes and fees
    def get_latest_blockhash(self, p: Params) -> Any:
        config = p.config(0)
        blockhash, last_valid = self.chain.latest_blockhash
        return self._with_context({"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}, config)

    def is_blockhash_valid(self, p: Params) -> Any:
        text, config = p.string(0, "blockhash"), p.config(1)
        try:
            blockhash = Hash.from_string(text)
        except ValueError:
            raise invalid(f"Invalid param: invalid blockhash {text!r}") from None
        return self._with_context(self.chain.blockhash_valid(blockhash), config)

    def get_fee_for_message(self, p: Params) -> Any:
        raw = decode_binary(p.string(0, "message"), "base64", "message")
        config = p.config(1)
        try:
            message = from_bytes_versioned(raw)
        except Exception as exc:
            raise invalid(f"Invalid params: failed to deserialize message: {exc}") from None
        if not isinstance(message, Message | MessageV0):
            raise invalid("Invalid params: perpkit localnet takes legacy and v0 messages")
        fee = self.chain.fee(message) if self.chain.blockhash_valid(message.recent_blockhash) else None
        return self._with_context(fee, config)

    def get_recent_prioritization_fees(self, p: Params) -> Any:
        addresses = {parse_pubkey(a) for a in (p.array(0, "addresses", required=False) or [])}
        if len(addresses) > 128:
            raise invalid("Too many inputs provided; max 128")
        return [
            {"slot": slot, "prioritizationFee": fee} for slot, fee in self.chain.recent_prioritization_fees(addresses)
        ]

    # transactions
    def send_transaction(self, p: Params) -> Any:
        config = p.config(1)
        tx = self._transaction(p, config, "base58")
        if not all(tx.verify_with_results()):
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        if not config.get("skipPreflight", False) and tx.signatures[0] in self.chain.history:
            # agave's preflight checks the status cache first: a copy of a landed transaction (a client that
            # lost the answer and sent it again) is refused as AlreadyProcessed, not simulated again
            already = Simulation(TransactionErrorFieldless.AlreadyProcessed, [], 0)
            raise RpcError(PREFLIGHT_FAILURE, f"Transaction simulation failed: {describe_error(already.err)}",
                           encode_simulation(already))  # fmt: skip
        if not config.get("skipPreflight", False):
            sim = self.chain.simulate(tx, sig_verify=False, replace_blockhash=False)  # verified above
            if sim.err is not None:
                raise RpcError(
                    PREFLIGHT_FAILURE,
                    f"Transaction simulation failed: {describe_error(sim.err)}",
                    encode_simulation(sim),
                )
        try:
            self.chain.execute(tx, sig_verify=False)  # verified above
        except TransactionRejected as rejected:
            if not config.get("skipPreflight", False):
                raise RpcError(
                    PREFLIGHT_FAILURE,
                    f"Transaction simulation failed: {describe_error(rejected.err)}",
                    encode_simulation(Simulation(rejected.err, [], 0)),
                ) from None
            # Without preflight a validator forwards and the cluster drops it: no status appears.
        return str(tx.signatures[0])

    def simulate_transaction(self, p: Params) -> Any:
        config = p.config(1)
        tx = self._transaction(p, config, "base58")
        sig_verify = bool(config.get("sigVerify", False))
        replace = bool(config.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise invalid("sigVerify may not be used with replaceRecentBlockhash")
        if sig_verify and not all(tx.verify_with_results()):
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        wanted = config.get("accounts")
        sim = self.chain.simulate(
            tx, sig_verify=sig_verify, replace_blockhash=replace, post_accounts=isinstance(wanted, dict)
        )
        accounts = None
        if isinstance(wanted, dict):
            addresses = [parse_pubkey(a) for a in wanted.get("addresses", [])]
            account_config = {"encoding": wanted.get("encoding", "base64")}
            accounts = []
            lookup = self.chain.get_account
            for address in addresses:
                account = sim.post_accounts.get(address) or self.chain.get_account(address)
                accounts.append(None if account is None else encode_account(account, account_config, "base64", lookup))
        value = encode_simulation(sim, accounts)
        if config.get("innerInstructions"):
            value["innerInstructions"] = encode_inner_instructions(sim.inner_instructions)
        if replace:
            blockhash, last_valid = self.chain.latest_blockhash
            value["replacementBlockhash"] = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
        return self._with_context(value, config)

    def get_signature_statuses(self, p: Params) -> Any:
        texts = p.array(0, "signatures") or []
        if len(texts) > MAX_SIGNATURE_STATUSES:
            raise invalid(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        p.config(1)
        values: list[Any] = []
        for text in texts:
            record = self.chain.history.get(_signature(text))
            values.append(None if record is None else _status(record))
        return self._with_context(values)

    def get_transaction(self, p: Params) -> Any:
        signature = _signature(p.string(0, "signature"))
        config = p.config(1)
        if config.get("commitment") == "processed":
            raise invalid("Invalid params: processed commitment is not supported for getTransaction")
        record = self.chain.history.get(signature)
        if record is None:
            return None
        max_version = config.get("maxSupportedTransactionVersion")
        version: Any = "legacy" if not isinstance(record.transaction.message, MessageV0) else 0
        if version == 0 and max_version is None:
            raise RpcError(
                UNSUPPORTED_TRANSACTION_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the request again "
                'with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        encoding = config.get("encoding", "json")
        if encoding not in ("json", "jsonParsed", "base64", "base58"):
            raise invalid(f"Invalid params: unsupported encoding {encoding!r}")
        result: dict[str, Any] = {
            "slot": record.slot,
            "blockTime": record.block_time,
            **encode_entry(record, encoding, self.chain.get_account),
        }
        if max_version is not None:
            result["version"] = version
        return result

    def request_airdrop(self, p: Params) -> Any:
        address, lamports = p.pubkey(0), p.integer(1, "lamports")
        p.config(2)
        if lamports == 0:
            raise invalid("Invalid params: lamports must be positive")
        try:
            record = self.chain.airdrop(address, lamports)
        except TransactionRejected as rejected:
            raise RpcError(INTERNAL_ERROR, f"airdrop failed: {describe_error(rejected.err)}") from None
        if record.err is not None:
            raise RpcError(INTERNAL_ERROR, f"airdrop failed: {describe_error(record.err)}")
        return str(record.signature)

    # surfpool cheatcodes
    def time_travel(self, p: Params) -> Any:
        config = p._get(0, "time travel config", False)
        try:
            if config is None:
                return self.chain.time_travel(timestamp_ms=self.chain.sync_clock().unix_timestamp * 1000 + 3_600_000)
            if not isinstance(config, dict) or len(config) != 1:
                raise invalid("Invalid params: expected one of absoluteTimestamp (ms), absoluteSlot, absoluteEpoch")
            ((kind, value),) = config.items()
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise invalid(f"Invalid params: {kind} must be a non-negative integer")
            if kind == "absoluteTimestamp":
                return self.chain.time_travel(timestamp_ms=value)
            if kind == "absoluteSlot":
                return self.chain.time_travel(slot=value)
            if kind == "absoluteEpoch":
                return self.chain.time_travel(epoch=value)
            raise invalid(f"Invalid params: unknown time travel {kind!r}")
        except TimeTravelError as exc:
            raise RpcError(INTERNAL_ERROR, "Internal error", str(exc)) from None

    def set_account(self, p: Params) -> Any:
        address = p.pubkey(0)
        update = p._get(1, "account update", True)
        if not isinstance(update, dict):
            raise invalid("Invalid params: the account update must be an object")
        current = self.chain.svm.get_account(address) or Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)
        lamports, data, owner = current.lamports, bytes(current.data), current.owner
        executable, rent_epoch = current.executable, current.rent_epoch
        if "lamports" in update:
            lamports = _u64(update["lamports"], "lamports")
        if "data" in update:
            try:
                data = bytes.fromhex(update["data"])
            except (TypeError, ValueError):
                raise invalid("Invalid hex data provided") from None
            if len(data) > MAX_ACCOUNT_DATA:
                raise invalid(f"Invalid params: {len(data):,} bytes of data, over the {MAX_ACCOUNT_DATA:,}-byte limit")
        if "owner" in update:
            owner = parse_pubkey(update["owner"], "owner")
        if "executable" in update:
            if not isinstance(update["executable"], bool):
                raise invalid("Invalid params: executable must be a bool")
            executable = update["executable"]
        if "rentEpoch" in update:
            rent_epoch = _u64(update["rentEpoch"], "rentEpoch")
        self.chain.set_account(address, Account(lamports, data, owner, executable, rent_epoch))
        return self._with_context(None)

    def pause_clock(self, p: Params) -> Any:
        return self.chain.pause_clock()

    def resume_clock(self, p: Params) -> Any:
        return self.chain.resume_clock()

    # blocks: one per executed transaction, at its slot (the chain produces blocks on demand)
    def _blocks(self) -> list[TxRecord]:
        return [record for record in self.chain.history.values() if record.block is not None]

    def _block_at(self, slot: int) -> tuple[TxRecord, int]:
        """The block at ``slot`` and its parent slot, or agave's error for a slot without one."""
        blocks = self._blocks()
        slots = [record.slot for record in blocks]
        i = bisect.bisect_left(slots, slot)
        if i < len(blocks) and slots[i] == slot:
            record = blocks[i]
            return record, slots[i - 1] if i else (0 if _height(record) <= 1 else max(slot - 1, 0))
        if not blocks or slot > slots[-1]:
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        if slot < slots[0] and _height(blocks[0]) > 1:
            raise RpcError(
                BLOCK_CLEANED_UP,
                f"Block {slot} cleaned up, does not exist on node. First available block: {slots[0]}",
            )
        raise RpcError(SLOT_SKIPPED, f"Slot {slot} was skipped, or missing due to ledger jump to recent snapshot")

    def get_block(self, p: Params) -> Any:
        slot = p.integer(0, "slot")
        raw = p._get(1, "configuration", False)
        config = {"encoding": raw} if isinstance(raw, str) else p.config(1)
        if config.get("commitment") == "processed":
            raise invalid("Method does not support commitment below `confirmed`")
        encoding = config.get("encoding") or "json"
        if encoding not in ("json", "jsonParsed", "base64", "base58"):
            raise invalid(f"Invalid params: unsupported encoding {encoding!r}")
        details = config.get("transactionDetails") or "full"
        if details not in ("full", "signatures", "none", "accounts"):
            raise invalid(f"Invalid params: unknown transactionDetails {details!r}")
        self._context(config)
        record, parent = self._block_at(slot)
        assert record.block is not None
        height, blockhash, previous = record.block
        block: dict[str, Any] = {
            "blockHeight": height,
            "blockTime": record.block_time,
            "blockhash": str(blockhash),
            "parentSlot": parent,
            "previousBlockhash": str(previous),
        }
        max_version = config.get("maxSupportedTransactionVersion")
        if details in ("full", "accounts"):
            version = _version(record, max_version)
            lookup = self.chain.get_account
            if details == "full":
                entry = encode_entry(record, encoding, lookup)
            else:
                meta = {k: v for k, v in _meta(record, lookup).items() if k not in _ACCOUNTS_MODE_SKIPS}
                parsed = encode_parsed_transaction(record.transaction, lookup)
                transaction = {"signatures": [str(s) for s in record.transaction.signatures]}
                entry = {"transaction": {**transaction, "accountKeys": parsed["message"]["accountKeys"]}, "meta": meta}
            if max_version is not None:
                entry["version"] = version
            block["transactions"] = [entry]
        elif details == "signatures":
            block["signatures"] = [str(record.signature)]
        if config.get("rewards") is not False:
            block["rewards"] = []
        return block

    def get_block_time(self, p: Params) -> Any:
        record, _ = self._block_at(p.integer(0, "slot"))
        return record.block_time

    def get_blocks(self, p: Params) -> Any:
        start = p.integer(0, "start slot")
        end_param = p._get(1, "end slot", False)
        config = p.config(2 if not isinstance(end_param, dict) else 1)
        end = (
            self._context(config)["slot"]
            if end_param is None or isinstance(end_param, dict)
            else p.integer(1, "end slot")
        )
        if end - start > MAX_GET_BLOCKS_RANGE:
            raise invalid(f"Slot range too large; max {MAX_GET_BLOCKS_RANGE}")
        return [record.slot for record in self._blocks() if start <= record.slot <= end]

    def get_blocks_with_limit(self, p: Params) -> Any:
        start, limit = p.integer(0, "start slot"), p.integer(1, "limit")
        p.config(2)
        if limit > MAX_GET_BLOCKS_RANGE:
            raise invalid(f"Limit too large; max {MAX_GET_BLOCKS_RANGE}")
        return [record.slot for record in self._blocks() if start <= record.slot][:limit]

    def get_first_available_block(self, p: Params) -> Any:
        blocks = self._blocks()
        return blocks[0].slot if blocks else 0

    def get_signatures_for_address(self, p: Params) -> Any:
        address, config = p.pubkey(0, "address"), p.config(1)
        if config.get("commitment") == "processed":
            raise invalid("Method does not support commitment below `confirmed`")
        limit = config.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise invalid(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before = None if config.get("before") is None else _signature(config["before"])
        until = None if config.get("until") is None else _signature(config["until"])
        self._context(config)
        history = self.chain.history
        if before is not None and before not in history:
            return []
        found: list[dict[str, Any]] = []
        started = before is None
        for record in reversed(history.values()):
            if not started:
                started = record.signature == before
                continue
            if record.signature == until or len(found) >= limit:
                break
            if address in account_keys(Chain.message_of(record.transaction), self.chain.get_account):
                found.append(
                    {
                        "signature": str(record.signature),
                        "slot": record.slot,
                        "err": error_json(record.err),
                        "memo": None,
                        "blockTime": record.block_time,
                        "confirmationStatus": "finalized",
                    }
                )
        return found

    # tokens and supply
    def _token_accounts(self, p: Params, by: str) -> Any:
        key = p.pubkey(0, by)
        spec = p._get(1, "filter", True)
        config = p.config(2)
        if not isinstance(spec, dict) or len(spec) != 1 or not ({"mint", "programId"} & spec.keys()):
            raise invalid("Invalid params: the filter must be {mint: ...} or {programId: ...}")
        mint: Pubkey | None = None
        if "mint" in spec:
            mint = parse_pubkey(spec["mint"], "mint")
            mint_account = self.chain.get_account(mint)
            if mint_account is None:
                raise invalid("Invalid param: could not find mint")
            program = mint_account.owner
            if program not in TOKEN_PROGRAMS:
                raise invalid("Invalid param: not a Token mint")
        else:
            program = parse_pubkey(spec["programId"], "programId")
            if program not in TOKEN_PROGRAMS:
                raise invalid("Invalid param: unrecognized Token program id")
        lookup = self.chain.get_account
        found = []
        for address, account in self.chain.accounts_owned_by(program):
            data = bytes(account.data)
            fields = token_account_fields(data)
            if fields is None or (len(data) != 165 and (program == TOKEN_PROGRAM_ID or data[165] != 2)):
                continue  # not a token account (a Token-2022 account with extensions has type 2 at byte 165)
            account_mint, owner, _, delegate = fields
            if (owner if by == "owner" else delegate) != key or (mint is not None and account_mint != mint):
                continue
            found.append({"pubkey": str(address), "account": encode_account(account, config, "binary", lookup)})
        return self._with_context(found, config)

    def get_token_accounts_by_owner(self, p: Params) -> Any:
        return self._token_accounts(p, "owner")

    def get_token_accounts_by_delegate(self, p: Params) -> Any:
        return self._token_accounts(p, "delegate")

    def get_token_supply(self, p: Params) -> Any:
        address, config = p.pubkey(0, "mint"), p.config(1)
        account = self.chain.get_account(address)
        data = b"" if account is None else bytes(account.data)
        if account is None or account.owner not in TOKEN_PROGRAMS or len(data) < 82 or data[45] == 0:
            raise invalid("Invalid param: not a Token mint")
        if len(data) != 82 and (len(data) <= 165 or data[165] != 1):
            raise invalid("Invalid param: not a Token mint")
        return self._with_context(ui_token_amount(int.from_bytes(data[36:44], "little"), data[44]), config)

    def get_supply(self, p: Params) -> Any:
        config = p.config(0)
        # All lamports come from the faucet's genesis balance (airdrops are transfers); surfnet_setAccount
        # and burnt fees are not accounted for.
        value: dict[str, Any] = {"total": FAUCET_LAMPORTS, "circulating": FAUCET_LAMPORTS, "nonCirculating": 0}
        value["nonCirculatingAccounts"] = []
        return self._with_context(value, config)

    def get_largest_accounts(self, p: Params) -> Any:
        """The 20 accounts with the most lamports, most first (agave breaks ties by the larger address).

        Every account counts as circulating here (perpkit has no non-circulating set, as ``getSupply``
        says), so ``filter: "nonCirculating"`` gives an empty list and ``"circulating"`` the same as none.
        The accounts ranked are those the chain knows of: system-owned ones, any a transaction, a
        cheatcode or the start-up loaded, and every account their owners own."""
        config = p.config(0)
        wanted = config.get("filter")
        if wanted is not None and wanted not in ("circulating", "nonCirculating"):
            raise invalid(
                f"Invalid params: unknown variant `{wanted}`, expected `circulating` or `nonCirculating`"
                if isinstance(wanted, str)
                else 'Invalid params: filter must be "circulating" or "nonCirculating"'
            )
        context = self._context(config)
        if wanted == "nonCirculating":
            return {"context": context, "value": []}
        balances = sorted(
            ((account.lamports, bytes(address), address) for address, account in self._all_accounts().items()),
            reverse=True,
        )[:NUM_LARGEST_ACCOUNTS]
        value = [{"address": str(address), "lamports": lamports} for lamports, _, address in balances]
        return {"context": context, "value": value}

    def _all_accounts(self) -> dict[Pubkey, Account]:
        """Every live account the chain can name (LiteSVM lists accounts by owner only)."""
        chain = self.chain
        candidates = set(chain.known) | set(chain.loaded_at_start)
        for record in chain.history.values():
            candidates.update(account_keys(Chain.message_of(record.transaction), chain.get_account))
        found = dict(chain.accounts_owned_by(SYSTEM_PROGRAM_ID))
        for address in candidates - found.keys():
            account = chain.get_account(address)
            if account is not None:
                found[address] = account
        for owner in {account.owner for account in found.values()} - {SYSTEM_PROGRAM_ID}:
            found.update(chain.accounts_owned_by(owner))
        return found

    def get_stake_minimum_delegation(self, p: Params) -> Any:
        # 1 lamport: stake_raise_minimum_delegation_to_1_sol is not active on mainnet.
        return self._with_context(1, p.config(0))


def _u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise invalid(f"Invalid params: {what} must be an unsigned 64-bit integer")
    return value


def _signature(text: Any) -> Signature:
    if not isinstance(text, str):
        raise invalid("Invalid param: signatures must be base-58 strings")
    try:
        return Signature.from_string(text)
    except ValueError:
        raise invalid(f"Invalid param: invalid signature {text!r}") from None


def _status(record: TxRecord) -> dict[str, Any]:
    err = error_json(record.err)
    return {
        "slot": record.slot,
        "confirmations": None,
        "err": err,
        "status": {"Ok": None} if err is None else {"Err": err},
        "confirmationStatus": "finalized",
    }


def _meta(record: TxRecord, lookup: Lookup) -> dict[str, Any]:
    """``UiTransactionStatusMeta``; ``returnData`` is left out when there is none (agave's ``or_skip``).

    ``preBalances``/``postBalances`` cover the static keys only (the chain records no more)."""
    err = error_json(record.err)
    meta: dict[str, Any] = {
        "err": err,
        "status": {"Ok": None} if err is None else {"Err": err},
        "fee": record.fee,
        "preBalances": record.pre_balances,
        "postBalances": record.post_balances,
        "innerInstructions": encode_inner_instructions(record.inner_instructions),
        "logMessages": record.logs,
        "preTokenBalances": [],
        "postTokenBalances": [],
        "rewards": [],
        "loadedAddresses": loaded_addresses_json(Chain.message_of(record.transaction), lookup),
    }
    return_data = encode_return_data(record.return_data)
    if return_data is not None:
        meta["returnData"] = return_data
    meta["computeUnitsConsumed"] = record.compute_units
    return meta


def _height(record: TxRecord) -> int:
    return 0 if record.block is None else record.block[0]


def _version(record: TxRecord, max_version: Any) -> Any:
    """The transaction's version, or agave's error when the client did not say it takes v0."""
    if not isinstance(record.transaction.message, MessageV0):
        return "legacy"
    if max_version is None:
        raise RpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            "Transaction version (0) is not supported by the requesting client. Please try the request again "
            'with the following configuration parameter: "maxSupportedTransactionVersion": 0',
        )
    return 0


def encode_entry(record: TxRecord, encoding: str, lookup: Lookup) -> dict[str, Any]:
    """{transaction, meta} of a transaction in ``encoding``, as getTransaction and getBlock give them."""
    if encoding == "jsonParsed":
        return {
            "transaction": encode_parsed_transaction(record.transaction, lookup),
            "meta": _parsed_meta(record, lookup),
        }
    return {"transaction": encode_transaction(record.transaction, encoding), "meta": _meta(record, lookup)}


_ACCOUNTS_MODE_SKIPS = {"innerInstructions", "logMessages", "loadedAddresses", "returnData", "computeUnitsConsumed"}
"""What ``transactionDetails: "accounts"`` leaves out of the meta."""


def encode_parsed_transaction(tx: VersionedTransaction, lookup: Lookup) -> dict[str, Any]:
    """``encoding: "jsonParsed"``: agave's ``UiParsedMessage``, account keys with their flags (and
    ``source``: "lookupTable" for the loaded ones) and instructions parsed where agave has a parser
    (:mod:`perpkit.localnet.parsed`)."""
    message = Chain.message_of(tx)
    writable = writable_keys(message)
    signed = message.header.num_required_signatures
    loaded_writable, loaded_readonly = loaded_addresses(message, lookup)
    keys = [*message.account_keys, *loaded_writable, *loaded_readonly]
    static = [
        {"pubkey": str(k), "writable": k in writable, "signer": i < signed, "source": "transaction"}
        for i, k in enumerate(message.account_keys)
    ]
    loaded = [
        {"pubkey": str(k), "writable": i < len(loaded_writable), "signer": False, "source": "lookupTable"}
        for i, k in enumerate([*loaded_writable, *loaded_readonly])
    ]
    body: dict[str, Any] = {
        "accountKeys": static + loaded,
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [
            parse_instruction(keys[ix.program_id_index], list(bytes(ix.accounts)), bytes(ix.data), keys, None)
            for ix in message.instructions
        ],
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = _lookups_json(message)
    return {"signatures": [str(s) for s in tx.signatures], "message": body}


def _parsed_meta(record: TxRecord, lookup: Lookup) -> dict[str, Any]:
    """The meta of a ``jsonParsed`` transaction: inner instructions parsed, no ``loadedAddresses`` (as agave:
    the loaded keys are in the message's ``accountKeys``)."""
    meta = _meta(record, lookup)
    del meta["loadedAddresses"]
    keys = account_keys(Chain.message_of(record.transaction), lookup)
    groups = []
    for index, group in enumerate(record.inner_instructions):
        if not group:
            continue
        instructions = []
        for item in group:
            compiled = item.instruction()
            stack_height = json.loads(item.to_json()).get("stackHeight")
            program = keys[compiled.program_id_index]
            accounts, data = list(bytes(compiled.accounts)), bytes(compiled.data)
            instructions.append(parse_instruction(program, accounts, data, keys, stack_height))
        groups.append({"index": index, "instructions": instructions})
    meta["innerInstructions"] = groups
    return meta
