"""The web app (Starlette, an ASGI framework) and the server that runs it (uvicorn).

    app = create_app(Backend.open("index"), hosts=allowed_hosts("127.0.0.1", ["photos.lan"]))
    run(app, host="127.0.0.1", port=0, ready=print)     # port 0: a free port; ready(url) once listening

Every request passes `msfkit.serve.middleware` first: only the server's own Host names are answered,
bodies are capped, every response carries the security headers; every error is JSON `{"error": ...}`.

Starlette because the server is a handful of JSON routes and files: it is small, typed, async (a
slow dedup or model forward runs in its thread pool without stalling other requests), needs no
build step or template engine, and uvicorn is its well-kept production server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from msfkit.models.errors import MsfkitError
from msfkit.serve.api import routes
from msfkit.serve.errors import NotFound, Refused
from msfkit.serve.middleware import LOOPBACK_NAMES, Guard, HostCheck
from msfkit.sizes import cache_dir

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp

    from msfkit.serve.backend import Backend

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("msfkit.serve")


def create_app(
    backend: Backend, cache: Path | None = None, hosts: Sequence[str] = LOOPBACK_NAMES
) -> Starlette:
    """The page (/), its static files (/static) and the JSON API (/api), over `backend`, answering
    requests whose Host is one of `hosts` (`msfkit.serve.middleware.allowed_hosts`)."""
    cache = Path(cache) if cache is not None else cache_dir("serve", backend.key)

    async def home(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return Starlette(
        routes=[
            Route("/", home),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            *routes(backend, cache),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            Middleware(Guard, max_bytes=backend.limits.upload_bytes),
            Middleware(HostCheck, hosts=hosts),
        ],
        exception_handlers={
            NotFound: _error(404),
            Refused: _error(400),
            MsfkitError: _error(400),
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


def _error(status: int):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", status))

    return handler


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = "not found: no such endpoint or file" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server's log"}, 500)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. A user error when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle's algorithm)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise MsfkitError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, ready: Callable[[str], None] | None = None):
    """Serve `app` until interrupted; `ready(url)` is called once the server listens."""
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)

    async def serve() -> None:
        startup = server.startup

        async def announce(sockets=None) -> None:
            await startup(sockets=sockets)
            if ready is not None and server.started:
                ready(url)

        server.startup = announce
        await server.serve(sockets=[sock])

    try:
        asyncio.run(serve())
    finally:
        sock.close()
