"""The JSON request bodies the server accepts, each checked here, in one place, against a small schema.

    body = search_body(await request.body(), offset=0, limit=20)   # SearchBody(rows=[17], ...)

A body that is not JSON, nests too deep, is not an object, has a field the schema does not name or
a field of the wrong kind is a `Refused` (400) whose one line names the field: `offset: a whole
number is expected, not 'abc'`. Ranges (a row past the end, a page too deep) are the backend's to
check, where the limits are.
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


def _whole(value: Any) -> str | None:
    """None when `value` is a whole number (JSON true/false are not), else what is expected."""
    return None if type(value) is int else "a whole number is expected"


def _whole_list(value: Any) -> str | None:
    ok = isinstance(value, list) and all(type(v) is int for v in value)
    return None if ok else "a list of whole numbers is expected"


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        type(v) is int or (type(v) is float and math.isfinite(v)) for v in value
    )


def _vector(value: Any) -> str | None:
    return None if _numbers(value) else "a list of finite numbers is expected"


def _vectors(value: Any) -> str | None:
    ok = isinstance(value, list) and all(_numbers(v) for v in value)
    return None if ok else "a list of lists of finite numbers is expected"


SEARCH: dict[str, Callable[[Any], str | None]] = {
    "row": _whole,
    "rows": _whole_list,
    "vector": _vector,
    "vectors": _vectors,
    "offset": _whole,
    "limit": _whole,
}


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
    for name, value in body.items():
        check = SEARCH.get(name)
        if check is None:
            raise Refused(f"{_shown(name)}: not a field of a search; give {EXAMPLES}, and offset, limit")
        wrong = check(value)
        if wrong is not None:
            raise Refused(f"{name}: {wrong}, not {_shown(value)}")
    given = [name for name in SEARCH_WITH if name in body]
    if len(given) != 1:
        raise Refused(f"say what to search with, once: {EXAMPLES}")
    (name,) = given
    value = body[name] if name.endswith("s") else [body[name]]
    rows, vectors = (value, None) if name.startswith("row") else (None, value)
    return SearchBody(rows, vectors, body.get("offset", offset), body.get("limit", limit))


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
