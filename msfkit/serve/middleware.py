"""What every request passes through before a route sees it: `Guard` (body size, security headers) and
`HostCheck` (only the server's own Host names, Starlette's `TrustedHostMiddleware`).

    hosts = allowed_hosts("0.0.0.0", ["photos.lan"])    # the loopback names, 0.0.0.0 and photos.lan
    middleware = [Middleware(Guard, max_bytes=20 * 2**20), Middleware(HostCheck, hosts=hosts)]

Why the Host check: a web page whose DNS name is rebound to 127.0.0.1 after it loaded could call
the API from the user's browser as same-origin and read the collection; its requests still carry
its own name in `Host`, which the server refuses. Every refusal is JSON `{"error": ...}`, like
the server's other errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse

from msfkit.models.errors import MsfkitError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'"),
]
_NAME = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\]")


def allowed_hosts(host: str = "127.0.0.1", extra: Sequence[str] = ()) -> list[str]:
    """The Host names the server answers to: the loopback names, the address it listens on (`host`)
    and the names of `--allowed-host` (`extra`: a name, an IP address, or `*.example.com` for every
    name under example.com). A user error for anything else (`*` alone among them)."""
    names = list(LOOPBACK_NAMES)
    for option, name in [("--host", host), *(("--allowed-host", n) for n in extra)]:
        shown = f"[{name}]" if ":" in name and not name.startswith("[") else name
        if not _NAME.fullmatch(shown):
            raise MsfkitError(
                f"{option} {name!r}: a host name, an IP address or *.domain (every name under it)"
            )
        if shown.lower() not in names:
            names.append(shown.lower())
    return names


class HostCheck:
    """Starlette's `TrustedHostMiddleware` over `hosts` (see `allowed_hosts`), its refusal a JSON 400."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=list(hosts), www_redirect=False)
        self.hosts = ", ".join(hosts)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["msfkit.host_checked"] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def answer(message: Message) -> None:
            if scope.get("msfkit.host_checked"):
                await send(message)
            elif message["type"] == "http.response.start":  # the check's own plain-text 400
                error = (
                    f"the Host header names none of this server's names ({self.hosts}); "
                    "msfkit serve --allowed-host NAME adds one"
                )
                await JSONResponse({"error": error}, status_code=400)(scope, receive, send)

        await self.check(scope, receive, answer)


class BodyTooLarge(Exception):
    pass


class Guard:
    """Pure ASGI middleware: request bodies capped at `max_bytes` (413 before reading when the
    Content-Length says so, else as soon as the stream passes it) and security headers on every
    response (no sniffing, no framing, scripts only from this server)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = f"the request is larger than the server's limit of {self.max_bytes:,} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await _send_json(send, 413, {"error": limit})
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge
            return message

        async def headed(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message, headers=[*message.get("headers", []), *SECURITY_HEADERS])
            await send(message)

        try:
            await self.app(scope, counted, headed)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, {"error": limit})


async def _send_json(send: Send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": data})
