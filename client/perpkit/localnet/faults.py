"""A fault-injecting JSON-RPC proxy in front of a ``perpkit localnet`` (or any Solana JSON-RPC URL), for tests.

:class:`FaultProxy` forwards JSON-RPC POSTs to ``upstream`` and, as told, for a seeded-random fraction
of them: drops the connection before forwarding (``drop``) or after forwarding, losing the answer
(``lose``: the upstream did the work, e.g. a transaction landed, but the caller never hears of it); answers
HTTP 429 or 503 without forwarding; stalls ``stall_seconds`` before forwarding; and answers
``getLatestBlockhash`` with a stale blockhash (the first one it forwarded, or one given to
:meth:`FaultProxy.remember_blockhash`).  Tell it what to do in-process (``proxy.faults = Faults(...)``,
``proxy.configure(...)``), over HTTP (``POST /_faults`` with a JSON object of :class:`Faults` fields;
``GET /_faults`` returns the current ones and the tallies), or at start from the ``PERPKIT_FAULTS``
environment variable (the same JSON).  It does not proxy the PubSub WebSocket: a bot behind it
polls (``--ws-url none``), or is given the upstream's WebSocket directly.

Run standalone: ``python -m perpkit.localnet.faults UPSTREAM_URL [--port N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

_FAULT_KINDS = ("drop", "lose", "http_429", "http_503", "stall", "stale_blockhash")


@dataclass
class Faults:
    """Fractions (0 to 1) of requests to meet each fault; drawn in this order, at most one fault per request."""

    drop: float = 0.0
    """Close the connection without forwarding."""
    lose: float = 0.0
    """Forward, then close the connection without answering."""
    http_429: float = 0.0
    http_503: float = 0.0
    stall: float = 0.0
    """Wait ``stall_seconds`` before forwarding."""
    stall_seconds: float = 1.0
    stale_blockhash: float = 0.0
    """Of the getLatestBlockhash requests: answer with the remembered (old) blockhash."""
    methods: list[str] | None = None
    """Only requests of these methods meet faults (None: every method)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)} (known: {sorted(known)})")
        return cls(**data)


class FaultProxy:
    """``async with FaultProxy(upstream, seed=1) as proxy:`` then point the client at ``proxy.url``."""

    def __init__(self, upstream: str, *, faults: Faults | None = None, seed: int = 0, host: str = "127.0.0.1",
                 port: int = 0) -> None:  # fmt: skip
        self.upstream = upstream
        self.faults = faults or Faults()
        self.random = random.Random(seed)
        self.host, self.port = host, port
        self.tally: Counter[str] = Counter()
        """Requests per method, and faults injected per kind (``fault:drop``...)."""
        self.stale: dict[str, Any] | None = None
        """The remembered getLatestBlockhash value (``{"blockhash", "lastValidBlockHeight"}``)."""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def configure(self, **settings: Any) -> None:
        """Replace the faults (unset fields fall back to the defaults: no fault)."""
        self.faults = Faults.from_json(settings)

    def clear(self) -> None:
        self.faults = Faults()

    def injected(self) -> int:
        return sum(n for k, n in self.tally.items() if k.startswith("fault:"))

    async def remember_blockhash(self) -> dict[str, Any]:
        """Remember the upstream's current blockhash, to serve as the stale one later."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash", "params": []}
        assert self._session is not None, "start the proxy first"
        async with self._session.post(self.upstream, json=body) as response:
            self.stale = dict((await response.json())["result"]["value"])
        return self.stale

    async def start(self) -> FaultProxy:
        env = os.environ.get("PERPKIT_FAULTS")
        if env:
            self.faults = Faults.from_json(json.loads(env))
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get("/_faults", self._get_faults)
        app.router.add_post("/_faults", self._set_faults)
        app.router.add_post("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- handlers ----------------------------------------------------------------
    async def _get_faults(self, _: web.Request) -> web.Response:
        return web.json_response({"faults": dataclasses.asdict(self.faults), "tally": dict(self.tally)})

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"faults": dataclasses.asdict(self.faults)})

    def _draw(self, method: str) -> str | None:
        f = self.faults
        if f.methods is not None and method not in f.methods:
            return None
        x = self.random.random()
        for kind in _FAULT_KINDS:
            if kind == "stale_blockhash" and method != "getLatestBlockhash":
                continue
            fraction = float(getattr(f, kind))
            if x < fraction:
                return kind
            x -= fraction
        return None

    @staticmethod
    def _hang_up(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)  # never written: the connection is gone

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        method = str(parsed.get("method")) if isinstance(parsed, dict) else "batch"
        self.tally[method] += 1
        fault = self._draw(method)
        if fault is not None:
            self.tally[f"fault:{fault}"] += 1
        if fault == "drop":
            return self._hang_up(request)
        if fault in ("http_429", "http_503"):
            status = 429 if fault == "http_429" else 503
            return web.Response(status=status, text="injected fault\n", headers={"Retry-After": "0"})
        if fault == "stall":
            await asyncio.sleep(self.faults.stall_seconds)
        assert self._session is not None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.post(self.upstream, data=body, headers=headers) as upstream:
            status, answer = upstream.status, await upstream.read()
            content_type = upstream.headers.get("Content-Type", "application/json")
        if fault == "lose":
            return self._hang_up(request)
        if method == "getLatestBlockhash" and status == 200:
            answer = self._blockhash(answer, stale=fault == "stale_blockhash")
        return web.Response(status=status, body=answer, headers={"Content-Type": content_type})

    def _blockhash(self, answer: bytes, *, stale: bool) -> bytes:
        """Remember the first blockhash seen; serve the remembered one when ``stale``."""
        try:
            data = json.loads(answer)
            value = data["result"]["value"]
        except (ValueError, KeyError, TypeError):
            return answer
        if self.stale is None:
            self.stale = dict(value)
            return answer
        if not stale:
            return answer
        data["result"]["value"] = dict(self.stale)
        return json.dumps(data).encode()


async def _serve(args: argparse.Namespace) -> None:
    async with FaultProxy(args.upstream, seed=args.seed, host=args.host, port=args.port) as proxy:
        print(f"fault proxy {proxy.url} -> {args.upstream} (POST {proxy.url}/_faults to set faults)", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perpkit.localnet.faults", description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="JSON-RPC URL to forward to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
