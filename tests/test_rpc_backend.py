"""The RPC backend's behaviour on a bad network: retries, blockhash refresh, clock control, budgets.

A fault-injecting proxy (aiohttp, in the test's event loop) sits between the
backend and the session's real ``perpkit localnet``: it answers the first
few matching requests with the fault, then forwards everything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from solana.constants import LAMPORTS_PER_SOL
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client, ClockControlUnsupported, TransactionFailed, program_errors
from perpkit import instructions as ix
from perpkit.backends.rpc import RetryPolicy, RpcBackend, RpcProtocolError, RpcUnavailable
from perpkit.testing import create_oracle, setup_market

Fault = Callable[[dict[str, Any]], Awaitable[web.StreamResponse | dict[str, Any] | None]]


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: dict[str, list[Fault]] = {}
        self.seen: list[str] = []
        self.http = httpx.AsyncClient(timeout=10)

    def inject(self, method: str, *faults: Fault) -> None:
        self.faults.setdefault(method, []).extend(faults)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        method = body.get("method", "")
        self.seen.append(method)
        pending = self.faults.get(method)
        if pending:
            try:
                answer = await pending.pop(0)(body)
            except ConnectionResetError:  # the fault hangs up without answering
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=204)  # never written: the connection is gone
            if isinstance(answer, web.StreamResponse):
                return answer
            if answer is not None:
                return web.json_response(answer)
        upstream = await self.http.post(self.upstream, json=body)
        return web.Response(body=upstream.content, content_type="application/json")


@pytest_asyncio.fixture
async def proxy(perps_rpc_url: str) -> AsyncIterator[tuple[FaultyProxy, str]]:
    faulty = FaultyProxy(perps_rpc_url)
    app = web.Application()
    app.router.add_post("/", faulty.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield faulty, f"http://127.0.0.1:{port}"
    await faulty.http.aclose()
    await runner.cleanup()


FAST = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)


def status(code: int) -> Fault:
    async def fault(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=code, text="slow down")

    return fault


def rpc_error(code: int, message: str, data: Any = None) -> Fault:
    async def fault(body: dict[str, Any]) -> dict[str, Any]:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        return {"jsonrpc": "2.0", "id": body["id"], "error": error}

    return fault


def stall(seconds: float) -> Fault:
    async def fault(body: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)
        return None  # then forward, too late for the client's timeout

    return fault


def lose_answer(upstream: str) -> Fault:
    """Forward the request (the transaction lands), then hang up: the caller never hears the answer."""

    async def fault(body: dict[str, Any]) -> web.StreamResponse:
        async with httpx.AsyncClient(timeout=10) as http:
            await http.post(upstream, json=body)
        raise ConnectionResetError("answer lost")  # aiohttp drops the connection without a response

    return fault


def stale_blockhash() -> Fault:
    async def fault(body: dict[str, Any]) -> dict[str, Any]:
        value = {"blockhash": str(Hash.new_unique()), "lastValidBlockHeight": 10**9}
        return {"jsonrpc": "2.0", "id": body["id"], "result": {"context": {"slot": 1}, "value": value}}

    return fault


async def client_through(url: str, **options: Any) -> Client:
    backend = await RpcBackend.connect(url, retry=FAST, **options)
    payer = Keypair()
    await backend.request_airdrop(payer.pubkey(), 10 * LAMPORTS_PER_SOL)
    return Client(backend, payer)


async def test_retries_429_5xx_timeouts_and_node_behind(proxy: tuple[FaultyProxy, str]) -> None:
    faulty, url = proxy
    client = await client_through(url, timeout=0.5)
    try:
        faulty.inject("getLatestBlockhash", status(429), status(503))
        faulty.inject("sendTransaction", rpc_error(-32005, "Node is behind by 42 slots", {"numSlotsBehind": 42}))
        faulty.inject("getSignatureStatuses", stall(1.0))
        faulty.inject("getAccountInfo", status(502))
        oracle = await create_oracle(client, price=7)
        assert (await client.fetch_oracle(oracle)).price == 7
        assert faulty.seen.count("getLatestBlockhash") >= 3 and faulty.seen.count("sendTransaction") == 2
        assert not any(faulty.faults.values()), "every injected fault was met and retried past"
    finally:
        await client.close()


async def test_blockhash_not_found_refreshes_and_resends(proxy: tuple[FaultyProxy, str]) -> None:
    faulty, url = proxy
    client = await client_through(url)
    try:
        faulty.inject("getLatestBlockhash", stale_blockhash())
        await create_oracle(client, price=9)  # first attempt: preflight says BlockhashNotFound
        assert faulty.seen.count("sendTransaction") == 2
    finally:
        await client.close()


async def test_a_lost_send_answer_is_confirmed_not_refused_as_already_processed(
    proxy: tuple[FaultyProxy, str],
) -> None:
    """The transaction landed but its answer was lost: the retry sends the same bytes, which the cluster
    calls AlreadyProcessed. That is the transaction's success, not a refusal."""
    faulty, url = proxy
    client = await client_through(url)
    try:
        faulty.inject("sendTransaction", lose_answer(faulty.upstream))
        oracle = await create_oracle(client, price=11)
        assert (await client.fetch_oracle(oracle)).price == 11
        assert faulty.seen.count("sendTransaction") == 2
    finally:
        await client.close()


async def test_gives_up_with_a_named_error(proxy: tuple[FaultyProxy, str]) -> None:
    faulty, url = proxy
    client = await client_through(url)
    try:
        faulty.inject("getAccountInfo", *[status(429)] * 10)
        with pytest.raises(RpcUnavailable, match="still failing after 5 attempts"):
            await client.now()
    finally:
        await client.close()
    with pytest.raises(RpcUnavailable):
        await RpcBackend.connect("http://127.0.0.1:9", retry=FAST)  # nothing listens there


async def test_unparseable_answers_are_a_named_error(proxy: tuple[FaultyProxy, str]) -> None:
    faulty, url = proxy
    client = await client_through(url)
    try:
        faulty.inject("getAccountInfo", rpc_error(-32005, "Node is behind"))  # no data: solders' parser panics
        with pytest.raises(RpcProtocolError, match="cannot parse"):
            await client.now()
    finally:
        await client.close()


async def test_endpoints_without_time_travel(proxy: tuple[FaultyProxy, str]) -> None:
    faulty, url = proxy
    faulty.inject("surfnet_timeTravel", rpc_error(-32601, "Method not found"))
    client = await client_through(url)
    try:
        assert client.backend.supports_clock_control is False
        with pytest.raises(ClockControlUnsupported, match="has no surfnet_timeTravel"):
            await client.advance_time(10)
    finally:
        await client.close()


async def test_compute_budget_and_error_indices(perps_client: Client) -> None:
    c = perps_client
    setup = await setup_market(c, book_capacity=4)
    done = await c.send([set_price(c, setup.oracle, 11)], compute_unit_limit=60_000, compute_unit_price=5)
    assert done.compute_units > 0 and (await c.fetch_oracle(setup.oracle)).price == 11
    stranger = Keypair()
    with pytest.raises(program_errors.Unauthorized) as caught:
        await c.send(
            [set_price(c, setup.oracle, 12, authority=stranger.pubkey())],
            [stranger],
            compute_unit_limit=60_000,
            compute_unit_price=5,
        )
    assert caught.value.instruction_index == 0  # the caller's index, not counting the two budget instructions
    with pytest.raises(TransactionFailed, match=r"ProgramFailedToComplete|ComputationalBudgetExceeded"):
        await c.send([set_price(c, setup.oracle, 13)], compute_unit_limit=100)


def set_price(c: Client, oracle: Pubkey, price: int, authority: Pubkey | None = None) -> Instruction:
    return ix.set_oracle_price(
        authority=authority or c.payer.pubkey(), oracle=oracle, price=price, conf=0, publish_time=0
    )


def test_retry_policy_backs_off_exponentially() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.2, max_delay=5.0)
    delays = [policy.delay(i) for i in range(6)]
    assert all(0.75 * min(5.0, 0.2 * 2**i) <= d <= 1.25 * min(5.0, 0.2 * 2**i) for i, d in enumerate(delays))
    assert json.dumps(delays)  # plain floats


async def test_a_simulation_is_one_call(proxy: tuple[FaultyProxy, str]) -> None:
    """The node puts in its own blockhash (replaceRecentBlockhash): no getLatestBlockhash first."""
    faulty, url = proxy
    client = await client_through(url)
    try:
        oracle = await create_oracle(client, price=5)
        now = (await client.clock()).unix_timestamp
        seen = len(faulty.seen)
        change = ix.set_oracle_price(oracle=oracle, authority=client.payer.pubkey(), price=6, conf=0, publish_time=now)
        result = await client.simulate([change])
        assert result.error is None and result.compute_units > 0
        assert faulty.seen[seen:] == ["simulateTransaction"]
        assert (await client.fetch_oracle(oracle)).price == 5  # a simulation changes nothing
    finally:
        await client.close()


async def test_a_server_that_is_not_a_solana_endpoint_is_a_named_error() -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="a web page")

    app = web.Application()
    app.router.add_get("/", page)  # a POST gets 405
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        with pytest.raises(RpcUnavailable, match=r"does not answer as a Solana JSON-RPC endpoint \(HTTP 405\)"):
            await RpcBackend.connect(url, retry=FAST)
    finally:
        await runner.cleanup()
