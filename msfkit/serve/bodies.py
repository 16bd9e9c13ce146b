"""The JSON request bodies the server accepts, each checked here, in one place, against a small schema.

    body = search_body(await request.body(), offset=0, limit=20)   # SearchBody(rows=[17], ...)
    lasso = lasso_body(await request.body(), offset=0, limit=60)   # LassoBody(method, polygon, ...)
    marked = removals_body(await request.body())                   # [3, 17]: rows marked for removal

A body that is not JSON, nests too deep, is not an object, has a field the schema does not name or
a field of the wrong kind is a `Refused` (400) whose one line names the field, down to the item:
`offset: a whole number is expected, not "abc"`, `vector[3]: a finite number is expected, not NaN`.
Ranges (a row past the end, a page too deep) are the backend's to check, where the limits are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msfkit.serve.errors import Refused

SEARCH_WITH = ("row", "rows", "vector", "vectors")  # exactly one of these
EXAMPLES = '{"row": N}, {"rows": [...]}, {"vector": [...]} or {"vectors": [[...]]}'


Wrong = tuple[str, str] | None  # (where in the field, what is wrong), None when right
Check = Callable[[Any], Wrong]


def _one(is_ok: Callable[[Any], bool], what: str) -> Check:
    def check(value: Any) -> Wrong:
        return None if is_ok(value) else ("", f"{what} is expected, not {_shown(value)}")

    return check


def _list_of(item: Check, what: str) -> Check:
    def check(value: Any) -> Wrong:
        if not isinstance(value, list):
            return "", f"{what} is expected, not {_shown(value)}"
        for i, v in enumerate(value):
            wrong = item(v)
            if wrong is not None:
                return f"[{i}]{wrong[0]}", wrong[1]
        return None

    return check


WHOLE = _one(lambda v: type(v) is int, "a whole number")  # JSON true and false are not
NUMBER = _one(lambda v: type(v) is int or (type(v) is float and math.isfinite(v)), "a finite number")
VECTOR = _list_of(NUMBER, "a list of numbers")
SEARCH: dict[str, Check] = {
    "row": WHOLE,
    "rows": _list_of(WHOLE, "a list of whole numbers"),
    "vector": VECTOR,
    "vectors": _list_of(VECTOR, "a list of vectors (lists of numbers)"),
    "offset": WHOLE,
    "limit": WHOLE,
}
POINT = _one(
    lambda v: isinstance(v, list) and len(v) == 2 and all(NUMBER(x) is None for x in v), "an [x, y] pair"
)
LASSO: dict[str, Check] = {
    "method": _one(lambda v: isinstance(v, str), "a method name"),
    "polygon": _list_of(POINT, "a list of [x, y] pairs"),
    "offset": WHOLE,
    "limit": WHOLE,
}
REMOVALS: dict[str, Check] = {"remove": _list_of(WHOLE, "a list of whole numbers")}


@dataclass(frozen=True)
class SearchBody:
    """A checked `POST /api/search` JSON body: `rows` or `vectors` (the other None), and the page."""

    rows: list[int] | None
    vectors: list[list[float]] | None
    offset: int
    limit: int


def search_body(data: bytes, offset: int, limit: int) -> SearchBody:
    """The body of a JSON search, checked against `SEARCH`; `offset` and `limit` (from the query
    string) unless the body gives them."""
    body = _object(data, f"a JSON object is expected: {EXAMPLES}")
    _check_fields(body, SEARCH, f"a search; give {EXAMPLES}, and offset, limit")
    given = [name for name in SEARCH_WITH if name in body]
    if len(given) != 1:
        raise Refused(f"say what to search with, once: {EXAMPLES}")
    (name,) = given
    value = body[name] if name.endswith("s") else [body[name]]
    rows, vectors = (value, None) if name.startswith("row") else (None, value)
    return SearchBody(rows, vectors, body.get("offset", offset), body.get("limit", limit))


@dataclass(frozen=True)
class LassoBody:
    """A checked `POST /api/map/select` JSON body: the map's `method`, the lasso's `polygon`, the page."""

    method: str
    polygon: list[list[float]]
    offset: int
    limit: int


def lasso_body(data: bytes, offset: int, limit: int) -> LassoBody:
    """The body of a lasso selection, checked against `LASSO`: a polygon, the map's method (default
    pca), and `offset` and `limit` (from the query string) unless the body gives them."""
    body = _object(data, 'a JSON object is expected: {"polygon": [[x, y], ...], "method": "pca"}')
    _check_fields(body, LASSO, "a lasso; give polygon, and method, offset, limit")
    if "polygon" not in body:
        raise Refused(
            'polygon: the lasso\'s [x, y] vertices are expected, e.g. {"polygon": [[0, 0], [1, 0], [0, 1]]}'
        )
    return LassoBody(
        body.get("method", "pca"), body["polygon"], body.get("offset", offset), body.get("limit", limit)
    )


def removals_body(data: bytes) -> list[int]:
    """The rows a `POST /api/dedup/removals.csv` body marks for removal besides the groups' ({"remove":
    [rows]}; an empty body marks none)."""
    if not data.strip():
        return []
    body = _object(data, 'a JSON object is expected: {"remove": [rows]}')
    _check_fields(body, REMOVALS, "a removal list; give remove")
    return body.get("remove", [])


def _check_fields(body: dict[str, Any], schema: dict[str, Check], what: str) -> None:
    """A `Refused` naming the first field of `body` that `schema` does not name (`what` says what the
    body is and which fields it takes) or whose value it refuses, down to the item."""
    for name, value in body.items():
        if name not in schema:
            raise Refused(f"{_shown(name)}: not a field of {what}")
        wrong = schema[name](value)
        if wrong is not None:
            raise Refused(f"{name}{wrong[0]}: {wrong[1]}")


def _object(data: bytes, expected: str) -> dict[str, Any]:
    """`data` parsed as a JSON object; a `Refused` that says why not."""
    try:
        body = json.loads(data)
    except RecursionError:  # [[[[...: deeper than Python's parser goes
        raise Refused("the request body nests too deep to be read") from None
    except ValueError as e:  # not UTF-8, or not JSON
        raise Refused(f"the request body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise Refused(expected)
    return body


def _shown(value: Any, most: int = 40) -> str:
    """`value` as JSON, cut to `most` characters; a list or an object by its size, never in whole."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    text = json.dumps(value)
    return text if len(text) <= most else text[: most - 3] + "..."
