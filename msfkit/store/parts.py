"""Which store folders a path names: one store, or a folder of `--shard i/n` parts, each opened as a
`Part` (its folder, its checked manifest, the shards a reader may use)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msfkit.models.errors import MsfkitError
from msfkit.store.format import MANIFEST, PART_NAME, Manifest, ShardEntry, read_manifest
from msfkit.store.shards import check_shards, committed_shards, shard_info


@dataclass
class Part:
    """One store folder and the shards committed in it."""

    root: Path
    manifest: Manifest
    shards: list[ShardEntry]  # in row order
    url: str | None = None  # where a store at a URL is (`root` is then its local read copy)

    @property
    def complete(self) -> bool:
        return self.manifest.complete


def has_parts(path: Path) -> bool:
    """Whether `path` is a store folder, or a folder of stores (e.g. `--shard` parts)."""
    return path.is_dir() and ((path / MANIFEST).is_file() or bool(_sub_stores(path)))


def open_parts(root: Path) -> list[Part]:
    """The store at `root`, or the stores in its sub-folders (in part order), checked to be whole."""
    if not root.is_dir():
        raise MsfkitError(f"{root}: no such store folder")
    manifest = read_manifest(root)
    if manifest is not None:
        return [_open_one(root, manifest)]
    subs = _sub_stores(root)
    if not subs:
        raise MsfkitError(f"{root}: not an embedding store (no {MANIFEST}, and no sub-folder has one)")
    parts = [_open_one(d, read_manifest(d)) for d in subs]
    counts = {p.manifest.part[1] for p in parts if p.manifest.part}
    if len(counts) > 1:
        raise MsfkitError(f"{root}: holds parts of different --shard splits ({sorted(counts)})")
    if counts:
        (count,) = counts
        have = {p.manifest.part[0] for p in parts if p.manifest.part}
        missing = sorted(set(range(count)) - have)
        if missing:
            listed = ", ".join(str(i) for i in missing[:10])
            raise MsfkitError(
                f"{root}: parts {listed} of {count} are missing (embed them with --shard i/{count})"
            )
    return parts


def _sub_stores(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and (d / MANIFEST).is_file()), key=_part_key)


def _open_one(root: Path, manifest: Manifest) -> Part:
    if not manifest.complete:  # killed mid-run: the committed shards are the ones on disk
        shards = [shard_info(root, k) for k in committed_shards(root)]
        plan = manifest.plan
        for s in (s for s in shards if plan is not None and s.name in plan.replace):
            s.replacing = plan.run  # it may hold new vectors already: another hash
        return Part(root, manifest, shards)
    return Part(root, manifest, check_shards(root, manifest.shards))


def _part_key(d: Path) -> tuple[int, str]:
    m = PART_NAME.match(d.name)
    return (int(m[1]) if m else -1, d.name)
