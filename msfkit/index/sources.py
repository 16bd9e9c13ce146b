"""The embedding stores an index holds (index.json's `sources`), each opened once.

    sources = open_sources(info["sources"])     # every store that can still be opened, opened once
    check_current(root, sources)                 # one line when a store replaced vectors since
    store = joined(sources)                      # the stores as one, or None when one moved or changed

An index records each store part it holds: where it is, its source root, its manifest hash and
its rows then. `open_sources` is the one place that opens them again; whether the index is out of
date and whether its stores can stand in for its vectors are both answered from that one opening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msfkit.models.errors import MsfkitError
from msfkit.store import Store, open_store


@dataclass
class Source:
    """One store the index holds: index.json's record of it and the store as it is now (None when
    it moved, is gone or cannot be opened)."""

    entry: dict[str, Any]
    store: Store | None

    @property
    def unchanged(self) -> bool:
        """The store holds exactly the vectors the index was built from."""
        return self._single and self.store.manifest_hash == self.entry["manifest_hash"]

    @property
    def replaced(self) -> bool:
        """The store replaced vectors since (a changed file embedded again): the index is out of date.
        A store that only grew, or that cannot be compared, is not."""
        return self._single and not self.store.grew_from(self.entry["manifest_hash"], self.entry.get("rows"))

    @property
    def _single(self) -> bool:
        return self.store is not None and len(self.store.parts) == 1


def open_sources(entries: list[dict[str, Any]]) -> list[Source]:
    """Each recorded store opened once (None for those that cannot be)."""
    out = []
    for entry in entries:
        try:
            store = open_store(entry["store"])
        except MsfkitError:
            store = None
        out.append(Source(entry, store))
    return out


def check_current(root: object, sources: list[Source]) -> None:
    """One line, not stale neighbours, when a store the index holds replaced vectors since."""
    for s in sources:
        if s.replaced:
            stores = " ".join(x.entry["store"] for x in sources)
            raise MsfkitError(
                f"index {root} is out of date with {s.entry['store']}; "
                f"rebuild with msfkit index {stores} -o {root} --force"
            )


def joined(sources: list[Source]) -> Store | None:
    """The stores read as one, when every one is there with the vectors it had; else None."""
    if not all(s.unchanged for s in sources):
        return None
    try:
        return Store([s.store.parts[0] for s in sources])
    except MsfkitError:  # stores that can no longer be read as one
        return None


def joined_or_error(sources: list[Source]) -> Store:
    """`joined`, or a user error naming the stores when one moved or changed."""
    store = joined(sources)
    if store is None:
        listed = ", ".join(s.entry["store"] for s in sources)
        raise MsfkitError(f"the stores this index was built from are gone or changed ({listed})")
    return store


def source_entry(store: Store) -> dict[str, Any]:
    """index.json's record of a single-part store: where it is (its URL, for a store at one), its
    source root, its hash and size."""
    part = store.parts[0]
    return {
        "store": part.url or str(part.root.resolve()),
        "source_root": part.manifest.source_root,
        "manifest_hash": store.manifest_hash,
        "rows": len(store),
    }
