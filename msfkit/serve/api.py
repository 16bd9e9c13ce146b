"""The JSON API's endpoints (Starlette routes over a `Backend`); docs/serve.md documents each one.

Blocking work (faiss, torch, image decoding, dedup) runs in Starlette's thread pool, so one slow
request never stalls the others. Errors are JSON `{"error": "..."}` with a 4xx code; JSON bodies are
checked against their schema in `msfkit.serve.bodies`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from msfkit.data.csv_writer import csv_text
from msfkit.serve.bodies import removals_body, search_body
from msfkit.serve.errors import Refused
from msfkit.serve.files import decode_upload, image_bytes, thumbnail
from msfkit.serve.params import float_param, int_param, page_params
from msfkit.serve.views_api import view_routes

if TYPE_CHECKING:
    from starlette.requests import Request

    from msfkit.serve.backend import Backend

DEFAULT_THUMB = 192
RAW_TYPES = ("image/", "application/octet-stream")


def routes(backend: Backend, cache) -> list[Route]:
    """The API's routes, bound to `backend`; `cache` is the folder the thumbnails go to."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "rows": len(backend), "model": backend.encoder is not None})

    async def info(request: Request) -> Response:
        return JSONResponse(backend.about())

    async def row(request: Request) -> Response:
        return JSONResponse(backend.rows.info(request.path_params["row"]))

    async def image(request: Request) -> Response:
        data, kind = await run_in_threadpool(image_bytes, backend, request.path_params["row"])
        headers = {"Cache-Control": "private, max-age=3600"}
        return Response(data, media_type=kind, headers=headers)

    async def thumb(request: Request) -> Response:
        size = int_param(request, "size", DEFAULT_THUMB)
        path = await run_in_threadpool(thumbnail, backend, request.path_params["row"], size, cache / "thumbs")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def neighbors(request: Request) -> Response:
        offset, limit = page_params(request)
        rows = [request.path_params["row"]]
        found = await run_in_threadpool(backend.search_rows, rows, offset, limit, True)
        return JSONResponse(found)

    async def search(request: Request) -> Response:
        offset, limit = page_params(request)
        if request.method == "GET":
            return JSONResponse(await run_in_threadpool(backend.search_rows, _rows(request), offset, limit))
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            files = await _form_files(request, backend.limits.upload_files)
        elif kind.startswith(RAW_TYPES):
            files = [(request.query_params.get("name", "upload"), await request.body())]
        elif kind.startswith("application/json"):
            return JSONResponse(await _json_search(request, backend, offset, limit))
        else:
            raise Refused(
                "send an image (multipart form field 'image', or the raw bytes as image/*) "
                'or JSON {"row": N} / {"vector": [...]}',
                status=415,
            )
        found, timings = await run_in_threadpool(_upload_search, files, offset, limit)
        timing = ", ".join(f"{name};dur={ms:.2f}" for name, ms in timings.items())
        return JSONResponse(found, headers={"Server-Timing": timing})

    def _upload_search(files: list[tuple[str, bytes]], offset: int, limit: int) -> tuple[dict, dict]:
        """Decode and search in one trip to the thread pool; with the milliseconds of each step, sent
        as a Server-Timing header (decode, embed: the model's forward, search)."""
        start = time.perf_counter()
        images = [(name, decode_upload(data, name, backend)) for name, data in files]
        timings = {"decode": (time.perf_counter() - start) * 1000}
        return backend.search_images(images, offset, limit, timings), timings

    async def dedup(request: Request) -> Response:
        threshold, k = float_param(request, "threshold", 0.95), int_param(request, "k", 10)
        page, keep = page_params(request), request.query_params.get("keep", "first")
        return JSONResponse(await run_in_threadpool(backend.duplicates.page, threshold, k, page, keep))

    async def removals(request: Request) -> Response:
        threshold, k = float_param(request, "threshold", 0.95), int_param(request, "k", 10)
        keep = request.query_params.get("keep", "first")
        choices = _choices(request.query_params.get("choose", ""))
        body = await request.body() if request.method == "POST" else b""
        marked = await run_in_threadpool(removals_body, body)  # rows marked on the map: maybe many
        df = await run_in_threadpool(backend.duplicates.removals, threshold, k, keep, choices, marked)
        text = csv_text(df)  # the one CSV writer: a name that starts like a formula is not run
        name = f"removals-{threshold:g}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(text, media_type="text/csv", headers=headers)

    async def auto(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(backend.auto_threshold))

    return [
        Route("/api/health", health),
        Route("/api/info", info),
        Route("/api/search", search, methods=["GET", "POST"]),
        Route("/api/rows/{row:int}", row),
        Route("/api/rows/{row:int}/image", image),
        Route("/api/rows/{row:int}/thumb", thumb),
        Route("/api/rows/{row:int}/neighbors", neighbors),
        Route("/api/dedup", dedup),
        Route("/api/dedup/auto", auto),
        Route("/api/dedup/removals.csv", removals, methods=["GET", "POST"]),
        *view_routes(backend),
    ]


async def _json_search(request: Request, backend: Backend, offset: int, limit: int) -> dict:
    body = await run_in_threadpool(search_body, await request.body(), offset, limit)  # a large body: seconds
    if body.rows is not None:
        return await run_in_threadpool(backend.search_rows, body.rows, body.offset, body.limit)
    return await run_in_threadpool(backend.search_vectors, body.vectors, body.offset, body.limit)


class _InMemoryParser(MultiPartParser):
    """Starlette's multipart parser with uploads kept in memory (the request size is capped), so
    nothing is spooled to the system's temporary folder."""

    spool_max_size = 2**62


async def _form_files(request: Request, most: int) -> list[tuple[str, bytes]]:
    try:
        form = await _InMemoryParser(request.headers, request.stream(), max_files=most, max_fields=20).parse()
    except MultiPartException as e:
        raise Refused(f"unreadable upload: {e.message}") from None
    files = []
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.append((value.filename or "upload", await value.read()))
            await value.close()
    if not files:
        raise Refused("no file in the form: send the image in the field 'image'")
    return files


def _rows(request: Request) -> list[int]:
    text = request.query_params.get("row") or request.query_params.get("rows")
    if not text:
        raise Refused("GET /api/search takes ?row=N (or rows=N,M); POST an image or JSON to search otherwise")
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise Refused(f"rows={text!r}: whole numbers separated by commas") from None


def _choices(text: str) -> dict[int, int]:
    """'3:17,5:40' -> {3: 17, 5: 40}: the row kept in each group the person chose for."""
    out = {}
    for part in filter(None, text.split(",")):
        group, sep, row = part.partition(":")
        if not sep or not group.isdigit() or not row.isdigit():
            raise Refused(f"choose={text!r}: GROUP:ROW pairs separated by commas, e.g. 0:17,3:40")
        out[int(group)] = int(row)
    return out
