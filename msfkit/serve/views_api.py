"""The routes of the map and the curation lists (Starlette routes over a `Backend`; docs/serve.md
documents each one). Each view is computed in the thread pool on its first request, then kept.

    GET  /api/map?method=pca                  the points (base64 float32 x, y pairs), row order
    GET  /api/map/colours?by=label            one colour value per row: label, group or outlier score
                                              (&threshold= for groups, &score=knn|mahalanobis)
    POST /api/map/select  {"polygon": [...]}  the rows inside a lasso, and a page of their facts
    GET  /api/curate/outliers?score=knn       (and label-issues, leaks): a paged list of rows
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from msfkit.curate.outliers import SCORES
from msfkit.retrieval.dedup import DEFAULT_THRESHOLD
from msfkit.serve.bodies import lasso_body
from msfkit.serve.collection_map import COLOUR_BY
from msfkit.serve.params import choice_param, float_param, int_param, page_params
from msfkit.serve.projection import METHODS

if TYPE_CHECKING:
    from starlette.requests import Request

    from msfkit.serve.backend import Backend

SELECTION_PAGE = 60  # rows of a lasso described per page by default


def view_routes(backend: Backend) -> list[Route]:
    """The map's and the curation lists' routes, bound to `backend`."""

    async def points(request: Request) -> Response:
        method = choice_param(request, "method", METHODS)
        return JSONResponse(await run_in_threadpool(backend.map.answer, method))

    async def colours(request: Request) -> Response:
        by = choice_param(request, "by", COLOUR_BY)
        threshold, k = float_param(request, "threshold", DEFAULT_THRESHOLD), int_param(request, "k", 10)
        score = choice_param(request, "score", SCORES)
        return JSONResponse(await run_in_threadpool(backend.map.colours, by, threshold, k, score))

    async def select(request: Request) -> Response:
        offset, limit = page_params(request, SELECTION_PAGE)
        body = await run_in_threadpool(lasso_body, await request.body(), offset, limit)
        page = (body.offset, body.limit)
        return JSONResponse(await run_in_threadpool(backend.map.selection, body.method, body.polygon, page))

    async def curate(request: Request) -> Response:
        view, page = request.path_params["view"], page_params(request)
        threshold = float_param(request, "threshold", DEFAULT_THRESHOLD)
        test = request.query_params.get("test")
        test = None if test is None else int_param(request, "test", 0)
        score = choice_param(request, "score", SCORES)
        return JSONResponse(
            await run_in_threadpool(backend.curation.page, view, page, threshold, test, score)
        )

    return [
        Route("/api/map", points),
        Route("/api/map/colours", colours),
        Route("/api/map/select", select, methods=["POST"]),
        Route("/api/curate/{view}", curate),
    ]
