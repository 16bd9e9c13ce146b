"""`msfkit serve`: one local process that keeps an index (and its model) loaded and answers a JSON API
and a browser page: search by uploaded images, store rows or vectors, explore neighbours, browse
near-duplicate groups, outliers, label issues and leaks, look at a map of the collection and
download a removal list. docs/serve.md documents every endpoint.

    from msfkit.serve import Backend, create_app
    backend = Backend.open("index")            # the index, its stores and its model, loaded once
    app = create_app(backend)                  # a Starlette (ASGI) app; `run(app, port=0)` serves it

Only files that are rows of the index's stores are ever read (by row number, never by a path from a
request); the one folder written is the thumbnail and upload cache (`msfkit.sizes.cache_dir`).
Only requests addressed to the server's own names are answered, and every JSON body is checked
against its schema first (`msfkit.serve.middleware`, `msfkit.serve.bodies`).

The modules: `rows` (the indexed rows: paths, labels, file facts, vectors), `backend` (search over
them), `duplicates` (the near-duplicate view), `curation` (outliers, label issues, leaks),
`projection` and `collection_map` (the map), `files` (images, thumbnails, uploads), `bodies`,
`params`, `middleware`, `api` and `views_api` (the routes), `app` (the Starlette app and the server).
Starlette and uvicorn are the optional extra `msfkit[serve]`; importing this package needs neither.
"""

from msfkit.serve.backend import Backend, Limits
from msfkit.serve.errors import NotFound, Refused

__all__ = ["Backend", "Limits", "NotFound", "Refused", "create_app", "run"]


def __getattr__(name: str):
    if name in ("create_app", "run"):
        from msfkit.serve import app  # optional extra: serve (starlette, uvicorn), loaded when an app is made

        return getattr(app, name)
    raise AttributeError(f"module 'msfkit.serve' has no attribute {name!r}")
