"""The JSON-RPC backend: any Solana endpoint through solana-py's ``AsyncClient``.

Same interface as the embedded backend, so scenarios run unchanged on
``perpkit localnet``, ``solana-test-validator`` and devnet.  Sending:

* a fresh blockhash per transaction; preflight on by default, so program
  errors come back at once with their logs, decoded exactly as on LiteSVM;
* confirmation by polling signature statuses up to the configured
  commitment; if the blockhash expires first (block height past its last
  valid height) the transaction can no longer land, so it is signed again
  with a new blockhash and resent;
* bounded retries with exponential backoff on transient failures: timeouts
  and connection errors, HTTP 429/502/503/504, "blockhash not found", and
  "node is behind" (-32005).  Resending the same signed bytes is idempotent;
  a transaction is only re-signed when the old one can no longer land.

Clock control uses surfpool's ``surfnet_timeTravel`` where the endpoint has
it (``perpkit localnet`` does); elsewhere it raises ClockControlUnsupported.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException

# solana-py 0.41 moved the option types to ``solana.rpc.models`` (pydantic,
# keyword arguments only); 0.36, the anchorpy lane's, has them in ``types``.
try:
    from solana.rpc.models import (  # type: ignore[import-not-found,unused-ignore]
        DataSliceOpts,
        MemcmpOpts,
        TxOpts,
    )
except ImportError:  # solana < 0.40
    from solana.rpc.types import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        DataSliceOpts,
        MemcmpOpts,
        TxOpts,
    )
from solders.account import Account
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.errors import NodeUnhealthyMessage, SendTransactionPreflightFailureMessage
from solders.rpc.responses import SimulateTransactionResp
from solders.signature import Signature
from solders.sysvar import CLOCK
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from perpkit.backends.base import ChainClock, DataSlice, TxError, TxResult, clock_from_sysvar, return_data_from_solders
from perpkit.backends.errors import tx_error_from_solders
from perpkit.base58 import b58encode
from perpkit.checks import require_lamports, require_pubkey, signed_message
from perpkit.errors import (
    AirdropFailed,
    ClockControlUnsupported,
    InvalidInput,
    PerpkitError,
    RpcRequestFailed,
    StateControlUnsupported,
    TransactionFailed,
)
from perpkit.errors import RpcProtocolError as RpcProtocolError  # defined in perpkit.errors, re-exported here
from perpkit.errors import RpcUnavailable as RpcUnavailable

T = TypeVar("T")

# solders orders TransactionConfirmationStatus the same way (int() gives 0, 1, 2)
_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}
_TRANSIENT_HTTP = {429, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per call and exponential backoff between them."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt) * (0.75 + 0.5 * random.random()))


def _slice_opts(data_slice: DataSlice | None) -> DataSliceOpts | None:
    if data_slice is None:
        return None
    offset, length = data_slice
    if offset < 0 or length < 0:
        raise InvalidInput(f"data_slice needs a non-negative offset and length, got {data_slice}")
    return DataSliceOpts(offset=offset, length=length)


def _rpc_message(response: object) -> str:
    """The text of a JSON-RPC error as solana-py parsed it (``InternalErrorMessage { message: ... }``)."""
    message = getattr(response, "message", None)
    return str(message) if message is not None else str(response)


def _kind(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _transient(exc: BaseException) -> bool:
    # By class name as well as by class: solana-py 0.41 talks through httpx2, a
    # fork of httpx with the same exception names, 0.36 through httpx itself.
    kind = _kind(exc)
    if isinstance(exc, httpx.HTTPStatusError) or "HTTPStatusError" in kind:
        return getattr(getattr(exc, "response", None), "status_code", None) in _TRANSIENT_HTTP
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)) or kind & {"TimeoutException", "TransportError"}:
        return True
    if isinstance(exc, SolanaRpcException):  # solana-py wraps transport errors in it
        return exc.__cause__ is not None and _transient(exc.__cause__)
    if isinstance(exc, RPCException):
        return bool(exc.args) and isinstance(exc.args[0], NodeUnhealthyMessage)
    return False


class RpcBackend:
    """A Solana JSON-RPC endpoint as a perpkit backend."""

    name = "rpc"

    def __init__(
        self,
        url: str,
        *,
        commitment: str = "confirmed",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        skip_preflight: bool = False,
        poll_interval: float = 0.05,
        confirm_timeout: float = 90.0,
        blockhash_max_age: float = 20.0,
    ) -> None:
        """``blockhash_max_age``: seconds a fetched blockhash is reused for new transactions
        (a cluster accepts one for about 60 s); 0 fetches one per transaction."""
        if commitment not in _RANK:
            raise InvalidInput(f"commitment must be processed, confirmed or finalized, not {commitment!r}")
        self.url = url
        self.commitment = commitment
        self.client = AsyncClient(url, commitment=Commitment(commitment), timeout=timeout)
        self.http = httpx.AsyncClient(timeout=timeout)
        self.retry = retry or RetryPolicy()
        self.skip_preflight = skip_preflight
        self.poll_interval = poll_interval
        self.confirm_timeout = confirm_timeout
        self.supports_clock_control = False
        self.blockhash_max_age = blockhash_max_age
        self._cached_blockhash: tuple[Hash, int, float] | None = None
        self._signed_with_cached: set[Signature] = set()
        self._send_options = TxOpts(
            skip_confirmation=True, skip_preflight=skip_preflight, preflight_commitment=Commitment(commitment)
        )

    @classmethod
    async def connect(cls, url: str, **options: Any) -> RpcBackend:
        """Open a backend, check the endpoint answers, and find out whether it can move time."""
        backend = cls(url, **options)
        try:
            await backend._with_retries(backend.client.get_version)
            backend.supports_clock_control = await backend._has_time_travel()
        except PerpkitError:
            await backend.close()
            raise
        except Exception as exc:  # not a Solana JSON-RPC endpoint (HTTP 404/405, not JSON...): say so, typed
            await backend.close()
            cause = exc.__cause__ if isinstance(exc, SolanaRpcException) and exc.__cause__ else exc
            status = getattr(getattr(cause, "response", None), "status_code", None)
            reason = f"HTTP {status}" if status is not None else (str(cause) or type(cause).__name__)
            raise RpcUnavailable(f"{url} does not answer as a Solana JSON-RPC endpoint ({reason})") from exc
        return backend

    async def close(self) -> None:
        await self.client.close()
        await self.http.aclose()

    # -- plumbing --------------------------------------------------------------
    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.retry.attempts):
            try:
                return await call()
            except BaseException as exc:
                if type(exc).__name__ == "PanicException":  # solders' parsers panic on malformed answers
                    raise RpcProtocolError(f"{self.url}: solana-py cannot parse the answer ({exc})") from None
                if not isinstance(exc, Exception):
                    raise
                if not _transient(exc) or attempt == self.retry.attempts - 1:
                    if _transient(exc):
                        raise RpcUnavailable(f"{self.url}: still failing after {attempt + 1} attempts: {exc}") from exc
                    if isinstance(exc, RPCException):  # the endpoint's JSON-RPC error, as a perpkit error
                        response = exc.args[0] if exc.args else None
                        raise RpcRequestFailed(f"{self.url}: {_rpc_message(response)}", response) from exc
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def raw_request(self, method: str, params: list[Any]) -> Any:
        """A JSON-RPC call outside solana-py's typed API (surfpool cheatcodes); returns the raw response."""

        async def post() -> Any:
            response = await self.http.post(
                self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            )
            response.raise_for_status()
            return response.json()

        return await self._with_retries(post)

    async def _has_time_travel(self) -> bool:
        # A deliberately malformed call: -32602 means the method exists, -32601 that it does not.
        answer = await self.raw_request("surfnet_timeTravel", [{"perpkitProbe": 0}])
        error = answer.get("error") or {}
        return bool(error.get("code") != -32601 and ("error" in answer or "result" in answer))

    # -- reads ---------------------------------------------------------------
    async def get_account(self, address: Pubkey, *, data_slice: DataSlice | None = None) -> Account | None:
        opts = _slice_opts(data_slice)
        response = await self._with_retries(
            lambda: self.client.get_account_info(address, encoding="base64", data_slice=opts)
        )
        account = response.value
        return account if account is not None and account.lamports > 0 else None

    async def get_multiple_accounts(
        self, addresses: Sequence[Pubkey], *, data_slice: DataSlice | None = None
    ) -> list[Account | None]:
        opts = _slice_opts(data_slice)
        found: list[Account | None] = []
        for start in range(0, len(addresses), 100):
            chunk = list(addresses[start : start + 100])
            response = await self._with_retries(
                lambda c=chunk: self.client.get_multiple_accounts(c, encoding="base64", data_slice=opts)  # type: ignore[misc]
            )
            found.extend(a if a is not None and a.lamports > 0 else None for a in response.value)
        return found

    async def get_program_accounts(
        self,
        program_id: Pubkey,
        *,
        data_size: int | None = None,
        memcmp: Sequence[tuple[int, bytes]] = (),
        data_slice: DataSlice | None = None,
    ) -> list[tuple[Pubkey, Account]]:
        filters: list[int | MemcmpOpts] = [
            MemcmpOpts(offset=offset, bytes=b58encode(wanted)) for offset, wanted in memcmp
        ]
        if data_size is not None:
            filters.append(data_size)
        opts = _slice_opts(data_slice)
        response = await self._with_retries(
            lambda: self.client.get_program_accounts(program_id, encoding="base64", filters=filters, data_slice=opts)
        )
        return [(keyed.pubkey, keyed.account) for keyed in response.value if keyed.account.lamports > 0]

    async def minimum_balance_for_rent_exemption(self, size: int) -> int:
        response = await self._with_retries(lambda: self.client.get_minimum_balance_for_rent_exemption(size))
        return int(response.value)

    async def set_account(self, address: Pubkey, account: Account) -> None:
        update = {
            "lamports": account.lamports,
            "data": bytes(account.data).hex(),
            "owner": str(account.owner),
            "executable": account.executable,
            "rentEpoch": account.rent_epoch,
        }
        answer = await self.raw_request("surfnet_setAccount", [str(address), update])
        error = answer.get("error") or {}
        if error.get("code") == -32601:
            raise StateControlUnsupported(f"{self.url} cannot write accounts (it has no surfnet_setAccount)")
        if error:
            raise RpcRequestFailed(f"{self.url}: surfnet_setAccount refused: {error.get('message')}")

    async def get_clock(self) -> ChainClock:
        account = await self.get_account(CLOCK)
        if account is None:
            raise PerpkitError(f"{self.url}: the Clock sysvar is missing")
        return clock_from_sysvar(bytes(account.data))

    async def set_clock(self, unix_timestamp: int, slot: int | None = None) -> None:
        if not self.supports_clock_control:
            raise ClockControlUnsupported(f"{self.url} cannot move the clock (it has no surfnet_timeTravel)")
        config = {"absoluteSlot": slot} if slot is not None else {"absoluteTimestamp": unix_timestamp * 1000}
        answer = await self.raw_request("surfnet_timeTravel", [config])
        if "error" in answer:
            raise PerpkitError(f"time travel refused: {answer['error']}")

    # -- transactions ----------------------------------------------------------
    async def _blockhash(self) -> tuple[Hash, int]:
        response = await self._with_retries(self.client.get_latest_blockhash)
        return response.value.blockhash, response.value.last_valid_block_height

    async def _recent_blockhash(self, *, fresh: bool = False) -> tuple[Hash, int]:
        """A blockhash for a new transaction: the cached one while younger than ``blockhash_max_age``.

        Saves a getLatestBlockhash per transaction (one call in five of an
        open/close pair); the caller asks for a fresh one when the cached one
        would sign a transaction identical to one already sent (same
        signature: the cluster would take it for a duplicate)."""
        now = time.monotonic()
        cached = self._cached_blockhash
        if not fresh and cached is not None and now - cached[2] < self.blockhash_max_age:
            return cached[0], cached[1]
        blockhash, last_valid = await self._blockhash()
        if cached is None or blockhash != cached[0]:
            self._signed_with_cached.clear()
        self._cached_blockhash = (blockhash, last_valid, now)
        return blockhash, last_valid

    async def request_airdrop(self, address: Pubkey, lamports: int) -> None:
        require_pubkey(address, "airdrop address")
        require_lamports(lamports)
        try:
            response = await self._with_retries(lambda: self.client.request_airdrop(address, lamports))
        except RpcRequestFailed as exc:  # the faucet refused (rate limit, rent, empty faucet...)
            raise AirdropFailed(address, lamports, _rpc_message(exc.response).removeprefix("airdrop failed: ")) from exc
        _, last_valid = await self._blockhash()
        status = await self._confirm(response.value, last_valid)
        if status is None:
            raise AirdropFailed(address, lamports, "the transaction did not land", str(response.value))
        if status[1] is not None:
            raise AirdropFailed(address, lamports, tx_error_from_solders(status[1]).message, str(response.value))

    async def simulate_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        """One ``simulateTransaction`` call: the node puts in its own recent blockhash
        (``replaceRecentBlockhash``), so no ``getLatestBlockhash`` first."""
        message = signed_message(instructions, signers)  # InvalidInput unless signers are the ones it needs
        tx = Transaction(list(signers), message, Hash.default())
        encoded = base64.b64encode(bytes(VersionedTransaction.from_legacy(tx))).decode()
        config = {"encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": True,
                  "commitment": self.commitment}  # fmt: skip
        answer = await self.raw_request("simulateTransaction", [encoded, config])
        if "error" in answer:
            error = answer["error"]
            raise RpcRequestFailed(f"{self.url}: simulateTransaction: {error.get('message', error)}", error)
        try:
            parsed = SimulateTransactionResp.from_json(json.dumps(answer))
        except Exception as exc:  # solders raises its own parse errors
            raise RpcProtocolError(f"{self.url}: cannot parse the simulateTransaction answer ({exc})") from None
        if not isinstance(parsed, SimulateTransactionResp):
            raise RpcRequestFailed(f"{self.url}: simulateTransaction: {_rpc_message(parsed)}", parsed)
        value = parsed.value
        error = None if value.err is None else tx_error_from_solders(value.err)
        return TxResult(
            str(tx.signatures[0]),
            list(value.logs or []),
            value.units_consumed or 0,
            error,
            return_data_from_solders(value.return_data),
        )

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        message = signed_message(instructions, signers)  # InvalidInput unless signers are the ones it needs
        for attempt in range(self.retry.attempts):
            blockhash, last_valid = await self._recent_blockhash(fresh=attempt > 0)
            tx = Transaction(list(signers), message, blockhash)
            if tx.signatures[0] in self._signed_with_cached:  # the same transaction again: sign a fresh one
                blockhash, last_valid = await self._recent_blockhash(fresh=True)
                tx = Transaction(list(signers), message, blockhash)
            signature = tx.signatures[0]
            self._signed_with_cached.add(signature)
            raw = bytes(tx)
            try:
                await self._with_retries(lambda r=raw: self.client.send_raw_transaction(r, self._send_options))  # type: ignore[misc]
            except RpcRequestFailed as exc:
                failure = exc.response
                if not isinstance(failure, SendTransactionPreflightFailureMessage):
                    raise TransactionFailed(str(failure)) from exc
                sim = failure.data
                if sim.err != TransactionErrorFieldless.BlockhashNotFound and await self._already_landed(signature):
                    # These very bytes landed before and the answer was lost (the transport may resend a
                    # request on its own): the preflight of the copy fails (AlreadyProcessed on agave, or
                    # the instruction's own refusal where the copy is simulated again). The landed one counts.
                    status = await self._confirm(signature, last_valid)
                    if status is not None:
                        return await self._landed(signature, status[1])
                if sim.err == TransactionErrorFieldless.BlockhashNotFound:
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue  # never accepted: sign again with a fresh blockhash
                return TxResult(
                    str(signature),
                    list(sim.logs or []),
                    sim.units_consumed or 0,
                    tx_error_from_solders(sim.err),
                    return_data_from_solders(sim.return_data),
                )
            status = await self._confirm(signature, last_valid)
            if status is None:
                continue  # expired without landing: safe to sign again and resend
            return await self._landed(signature, status[1])
        raise RpcUnavailable(f"{self.url}: the transaction did not land after {self.retry.attempts} attempts")

    async def _already_landed(self, signature: Signature) -> bool:
        response = await self._with_retries(lambda: self.client.get_signature_statuses([signature], True))
        return response.value[0] is not None

    async def _confirm(self, signature: Signature, last_valid: int) -> tuple[int, Any] | None:
        """(slot, error or None) once the commitment is reached; None if the blockhash expired first."""
        wanted = _RANK[self.commitment]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        interval = self.poll_interval
        polls = 0
        while loop.time() < deadline:
            response = await self._with_retries(lambda: self.client.get_signature_statuses([signature]))
            status = response.value[0]
            level = None if status is None else status.confirmation_status
            if status is not None and level is not None and int(level) >= wanted:
                return status.slot, status.err
            polls += 1
            if status is None and polls % 4 == 0:
                height = await self._with_retries(self.client.get_block_height)
                if height.value > last_valid:
                    return None
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)
        raise RpcUnavailable(f"{signature} not confirmed within {self.confirm_timeout:.0f} s")

    async def recent_prioritization_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        answer = await self.raw_request("getRecentPrioritizationFees", [[str(a) for a in writable]])
        entries = sorted(answer.get("result") or [], key=lambda entry: int(entry["slot"]))
        return [int(entry["prioritizationFee"]) for entry in entries]

    async def transaction_outcome(self, signature: str) -> TxResult | None:
        sig = Signature.from_string(signature)
        statuses = await self._with_retries(lambda: self.client.get_signature_statuses([sig], True))
        status = statuses.value[0]
        if status is None:
            return None
        return await self._landed(sig, status.err)

    async def signatures_for_address(
        self, address: Pubkey, *, until: str | None = None, limit: int = 1000
    ) -> list[tuple[str, bool]]:
        config: dict[str, Any] = {"limit": limit, "commitment": "confirmed"}
        if until is not None:
            config["until"] = until
        answer = await self.raw_request("getSignaturesForAddress", [str(address), config])
        return [(str(entry["signature"]), entry.get("err") is not None) for entry in answer.get("result") or []]

    async def _landed(self, signature: Signature, err: Any) -> TxResult:
        """Logs, compute units and return data of a landed transaction (getTransaction, which may lag a little)."""
        commitment = Commitment("confirmed" if self.commitment == "processed" else self.commitment)
        for attempt in range(self.retry.attempts):
            response = await self._with_retries(
                lambda: self.client.get_transaction(
                    signature, encoding="json", commitment=commitment, max_supported_transaction_version=0
                )
            )
            if response.value is not None:
                meta = response.value.transaction.meta
                logs = list(meta.log_messages or []) if meta else []
                units = (meta.compute_units_consumed or 0) if meta else 0
                return_data = return_data_from_solders(meta.return_data) if meta else None
                error: TxError | None = None if err is None else tx_error_from_solders(err)
                return TxResult(str(signature), logs, units, error, return_data)
            await asyncio.sleep(self.retry.delay(attempt))
        error = None if err is None else tx_error_from_solders(err)
        return TxResult(str(signature), [], 0, error)
