"""The JSON request bodies the server accepts, each checked here, in one place, against a small schema.

    body = search_body(await request.body(), offset=0, limit=20)   # SearchBody(rows=[17], ...)

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
        if name not in SEARCH:
            raise Refused(f"{_shown(name)}: not a field of a search; give {EXAMPLES}, and offset, limit")
        wrong = SEARCH[name](value)
        if wrong is not None:
            raise Refused(f"{name}{wrong[0]}: {wrong[1]}")
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
