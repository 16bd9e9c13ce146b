"""The server's errors, each with its HTTP status: `NotFound` (404) and `Refused` (4xx, as given)."""

from __future__ import annotations

from msfkit.models.errors import MsfkitError


class NotFound(MsfkitError):
    """A row (or anything else asked for) that the index does not hold: HTTP 404."""


class Refused(MsfkitError):
    """A request the server will not answer as asked; `status` is the HTTP code (400, 409, 413, 415, 422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
