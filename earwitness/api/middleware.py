"""ASGI middleware: request ids, the upload size limit and the slow-body timeout.

Both are pure ASGI (not BaseHTTPMiddleware) so streaming uploads are counted as
they arrive and a too-large body is refused before it is written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from earwitness.logs import request_id_var

log = logging.getLogger("earwitness.http")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost error middleware, so the 500 (body
            # and X-Request-Id header) carries the id that this request's log lines carry.
            if status:
                raise
            log.exception("unhandled error")
            from earwitness.api.problems import internal_error

            await internal_error()(scope, receive, send_with_id)
        finally:
            log.info("%s %s -> %s", scope["method"], scope["path"], status)
            request_id_var.reset(token)


class _BodyRefused(Exception):
    """Raised from ``receive`` when the body is over the limit or arrives too slowly."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_PROBLEMS = {
    413: ("payload-too-large", "Payload too large"),
    408: ("request-timeout", "Request timeout"),
}


def _problem(status: int, detail: str) -> bytes:
    slug, title = _PROBLEMS[status]
    return json.dumps(
        {
            "type": f"https://earwitness.invalid/problems/{slug}",
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": request_id_var.get(),
        }
    ).encode()


class BodySizeLimitMiddleware:
    """Refuses a body over ``max_bytes`` (413) or trickled in too slowly (408), streaming or not.

    The check runs in ``receive``, so it holds for chunked bodies without a Content-Length.
    Whatever the app answers after its body broke (FastAPI turns a failure while parsing a
    form into 400 "error parsing the body") is replaced by the real reason. A slow client
    gets ``idle_timeout_s`` between two reads, and after that grace its average rate must
    stay over ``min_rate_bps``: a body sent byte by byte cannot hold a worker forever.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        idle_timeout_s: float = 30.0,
        min_rate_bps: float = 1024.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.min_rate_bps = min_rate_bps

    def _detail(self, status: int) -> str:
        if status == 413:
            return f"request body exceeds the limit of {self.max_bytes} bytes; nothing was stored"
        return (
            f"request body arrived too slowly (idle over {self.idle_timeout_s:g} s or under "
            f"{self.min_rate_bps:g} bytes/s); nothing was stored"
        )

    async def _reply(self, send: Send, status: int) -> None:
        body = _problem(status, self._detail(status))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reply(send, 413)
            return
        seen = 0
        started = False
        refused: int | None = None
        body_done = False
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def guarded_receive() -> Message:
            nonlocal seen, refused, body_done
            if body_done:  # e.g. a streaming response waiting for the disconnect: no clock
                return await receive()
            elapsed = loop.time() - began
            # time left: the idle timeout, or what the minimum average rate still allows
            budget = max(self.idle_timeout_s, self.idle_timeout_s + seen / self.min_rate_bps)
            wait = min(self.idle_timeout_s, budget - elapsed)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                refused = 408
                raise _BodyRefused(408) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = 413
                    raise _BodyRefused(413)
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                if message["type"] == "http.response.start":
                    started = True
                    await self._reply(send, refused)
                return  # the app's own answer to a body it could not read is dropped
            if message["type"] == "http.response.start":
                started = True
            if refused is not None:
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _BodyRefused as exc:
            if not started:
                await self._reply(send, exc.status)
