"""The HTTP side of ``perpkit localnet``: JSON-RPC 2.0 over aiohttp, on loopback.

Every request is answered: malformed JSON is -32700, a malformed request
-32600, an unknown method -32601, bad parameters -32602, and any unexpected
failure -32603 with the server still serving.  Batches and notifications
follow the JSON-RPC 2.0 specification.  Requests are handled one at a time
(LiteSVM is single-threaded), each within the event loop.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from perpkit.localnet.chain import LocalChain
from perpkit.localnet.rpc import INTERNAL_ERROR, INVALID_REQUEST, MAX_ACCOUNT_DATA, PARSE_ERROR, RpcError, RpcMethods

log = logging.getLogger("perpkit.localnet")

MAX_BODY_BYTES = 2 * MAX_ACCOUNT_DATA + 1024 * 1024
"""The largest HTTP body served: a 10 MiB account in hex (``surfnet_setAccount``) and 1 MiB to spare."""


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}


class LocalnetServer:
    """A JSON-RPC endpoint over one :class:`LocalChain`."""

    def __init__(self, chain: LocalChain, host: str = "127.0.0.1", port: int = 8899) -> None:
        self.chain = chain
        self.methods = RpcMethods(chain)
        self.host = host
        self.port = port
        self.requests = 0
        self.response_bytes = 0
        """Bytes of JSON the server has answered with (what clients downloaded, HTTP headers aside)."""
        self.calls: dict[str, int] = {}
        """JSON-RPC calls served, by method."""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        # surfnet_setAccount of a 10 MiB account: 20 MiB of hex plus the JSON around it.
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/", self._handle_http)
        app.router.add_get("/health", self._health)
        return app

    async def start(self) -> str:
        """Bind and serve; returns the URL (with the real port when ``port`` was 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        for sock in self._runner.addresses:  # the bound port, for port 0
            self.port = int(sock[1])
            break
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _handle_http(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.handle_body(body)
        if answer is None:
            return web.Response(status=204)
        text = json.dumps(answer)
        self.response_bytes += len(text)
        return web.Response(text=text, content_type="application/json")

    def handle_body(self, body: bytes) -> Any:
        """The JSON answer to one HTTP body (None when it held only notifications)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(None, RpcError(PARSE_ERROR, "Parse error"))
        if isinstance(payload, list):
            if not payload:
                return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
            answers = [a for a in (self.handle_one(item) for item in payload) if a is not None]
            return answers or None
        return self.handle_one(payload)

    def handle_one(self, item: Any) -> dict[str, Any] | None:
        self.requests += 1
        if not isinstance(item, dict):
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
        request_id = item.get("id")
        if not (request_id is None or isinstance(request_id, (str, int))) or isinstance(request_id, bool):
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
        method = item.get("method")
        if item.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(request_id, RpcError(INVALID_REQUEST, "Invalid request"))
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "perpkit_getStats":  # what a benchmark measures: calls and bytes served so far
            stats = {"requests": self.requests, "responseBytes": self.response_bytes, "calls": dict(self.calls)}
            return {"jsonrpc": "2.0", "result": stats, "id": request_id}
        try:
            result = self.methods.call(method, item.get("params"))
        except RpcError as error:
            return None if "id" not in item else _error(request_id, error)
        except Exception as exc:  # never let one request take the server down
            log.exception("internal error in %s", method)
            return (
                None if "id" not in item else _error(request_id, RpcError(INTERNAL_ERROR, "Internal error", str(exc)))
            )
        except BaseException as exc:
            # A Rust panic inside LiteSVM reaches Python as pyo3's PanicException, a BaseException: answer
            # it as the request's error instead of dropping the connection (which clients retry, in vain).
            if type(exc).__name__ != "PanicException":
                raise
            log.error("the runtime panicked in %s: %s", method, exc)
            message = f"the runtime (LiteSVM) panicked: {exc}"
            return None if "id" not in item else _error(request_id, RpcError(INTERNAL_ERROR, message))
        if "id" not in item:
            return None  # a notification gets no answer
        return {"jsonrpc": "2.0", "result": result, "id": request_id}
