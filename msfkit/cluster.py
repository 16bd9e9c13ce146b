"""The Ray cluster that `--engine ray` runs on (embedding and index building): one connection rule.

    ray = connect("auto")      # the cluster running here; None: RAY_ADDRESS or a new local one

Ray is an optional extra (`pip install 'msfkit[ray]'`): without it, one line names the extra.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from msfkit.models.errors import MsfkitError

RAY_EXTRA = "pip install 'msfkit[ray]'"
RETRIES = 3  # times Ray reruns a piece whose worker died
CONNECT_SECONDS = 5  # to wait for the head node's port to answer


def ray_missing(module: str | None = "ray") -> str:
    """The one line `--engine ray` says when Ray cannot be imported."""
    return f"--engine ray needs Ray ({module or 'ray'} is missing): {RAY_EXTRA}"


def connect(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` (None: RAY_ADDRESS, else a new local
    instance of its own; "auto": the one running here) unless this process is connected already."""
    try:
        import ray  # optional extra: ray
    except ImportError as e:
        raise MsfkitError(ray_missing(e.name)) from None
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):
            address = "local"  # ray.init(None) would join a cluster that another program runs here
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = "a new local instance" if address == "local" else address
            raise MsfkitError(f"cannot start or reach Ray at {where}: {str(e).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str | None) -> None:
    """One line at once for a HOST:PORT nobody answers on (Ray itself retries for minutes)."""
    if address is None or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise MsfkitError(f"Ray address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise MsfkitError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None
