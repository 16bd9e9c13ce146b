"""Query-string parameters as the routes read them: each a number, a page or a list, or a `Refused`
(400) whose one line names the parameter (`limit='x': a whole number is expected`).

    offset, limit = page_params(request)                # ?offset=&limit=, defaults 0 and 20
    threshold = float_param(request, "threshold", 0.95)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msfkit.serve.errors import Refused

if TYPE_CHECKING:
    from starlette.requests import Request

DEFAULT_LIMIT = 20


def int_param(request: Request, name: str, default: int) -> int:
    """The whole number `name`, or `default` when the query string does not give it."""
    text = request.query_params.get(name)
    try:
        return default if text is None else int(text)
    except ValueError:
        raise Refused(f"{name}={text!r}: a whole number is expected") from None


def float_param(request: Request, name: str, default: float) -> float:
    """The number `name` (never NaN), or `default` when the query string does not give it."""
    text = request.query_params.get(name)
    try:
        value = default if text is None else float(text)
    except ValueError:
        raise Refused(f"{name}={text!r}: a number is expected") from None
    if value != value:
        raise Refused(f"{name}: a number is expected, not NaN")
    return value


def page_params(request: Request, limit: int = DEFAULT_LIMIT) -> tuple[int, int]:
    """(offset, limit) of a paged list; their ranges are the backend's to check."""
    return int_param(request, "offset", 0), int_param(request, "limit", limit)


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first by default)."""
    value = request.query_params.get(name, choices[0])
    if value not in choices:
        raise Refused(f"{name}={value!r}: one of {', '.join(choices)}")
    return value
