"""The embedding store's format: file names, and THE manifest type (`Manifest`) with its checks.

This module and its neighbours (`shards`, `writer`, `reader`) are the only code that knows the
store's files; docs/formats.md describes every file and field. Every room reads a manifest by
attribute (`store.parts[0].manifest.settings.precision`), never by key.

    STORE/
      manifest.json          format_version, model (name, revision, fingerprint, config), dim, dtype,
                             normalized, source_root, part, settings, counts, shards, plan, complete
      emb/00000.npy          (rows, dim) float32, rows in the order of meta/00000.parquet
      meta/00000.parquet     one row per embedded image (`msfkit.store.shards`)
      errors/00000.parquet   path, reason: the files of shard 00000 that could not be embedded
      errors.parquet         every error of the store in one table, written when a run completes

A shard is committed when its meta file appears (renamed into place last). `msfkit embed --shard
i/n` writes the store `STORE/part-0000i-of-0000n`; a folder of such parts opens as one store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from msfkit._version import __version__
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write

# 2: every meta file written has `mtime_ns` (1: it may lack it). Read: 1 and 2; written: 2.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
ERRORS = "errors.parquet"
STORE_ENTRIES = frozenset({MANIFEST, ERRORS, "emb", "meta", "errors"})  # everything a store folder holds
PART_NAME = re.compile(r"^part-(\d+)-of-(\d+)$")
# The manifest keys that say what the vectors are; timestamps and run settings stay out of the hash.
HASHED_KEYS = ("format_version", "model", "dim", "dtype", "normalized", "source_root", "counts", "shards")


@dataclass
class ModelRecord:
    """Which model made the vectors (`msfkit.models.identity` compares fingerprints)."""

    name: str | None  # loadable by `msfkit.load`: an absolute folder or 'org/name@commit'
    revision: str | None  # the Hub commit; None for a folder
    fingerprint: str
    config: dict[str, Any] | None  # the model's config.json


@dataclass
class EmbedSettings:
    """How the vectors were computed: a rerun must use the same, and queries are embedded alike."""

    precision: str = "fp32"  # "fp32" or "bf16"
    draft: bool = False  # JPEG draft decoding
    shard_rows: int = 4096  # files per shard

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> EmbedSettings:
        """The settings as recorded (in a manifest, or copied into index.json); a missing key takes
        its default, an unknown one is ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


@dataclass
class ShardEntry:
    """One committed shard: its name, rows (embedded files) and failed files."""

    name: str  # zero-padded shard number
    rows: int
    failed: int = 0
    generation: int = 0  # how many times its rows were replaced (written only when > 0)
    replacing: str | None = None  # read from an incomplete store: the run replacing its rows (hashed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "rows": self.rows, "failed": self.failed}
        if self.generation:
            out["generation"] = self.generation
        if self.replacing is not None:
            out["replacing"] = self.replacing
        return out


@dataclass
class RunPlan:
    """The last run's plan, saved before any shard is written, so a rerun after a kill resumes it."""

    base: int  # first shard number of the run
    shards: int  # shards planned
    files: int  # files listed
    listing_hash: str  # hash of the sorted relative paths
    replace: list[str] = field(default_factory=list)  # shards whose rows the run replaces
    run: str = ""  # random per run


@dataclass
class Manifest:
    """manifest.json, typed. `format_version` is the version the file was written with (kept for
    the manifest hash, so a store read by a newer msfkit keeps its hash until a run rewrites it)."""

    model: ModelRecord
    dim: int
    source_root: str | None
    settings: EmbedSettings | None = None  # None only in stores written by hand (tests, benchmarks)
    part: tuple[int, int] | None = None  # (index, count) of a `--shard` part
    counts: tuple[int, int] = (0, 0)  # (embedded, failed) as of the last completed run
    shards: list[ShardEntry] = field(default_factory=list)  # as of the last completed run
    complete: bool = False
    dtype: str = "float32"
    normalized: bool = True
    created: str | None = None
    updated: str | None = None
    msfkit_version: str | None = None
    plan: RunPlan | None = None
    format_version: int = FORMAT_VERSION

    @classmethod
    def new(cls, model: ModelRecord, dim: int, source_root: Path | str, **fields: Any) -> Manifest:
        """The manifest of an empty store of `dim`-d float32 unit vectors made by `model`."""
        return cls(model, dim, str(source_root), created=now(), msfkit_version=__version__, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, in the key order msfkit has always written."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "model": asdict(self.model),
            "dim": self.dim,
            "dtype": self.dtype,
            "normalized": self.normalized,
            "source_root": self.source_root,
            "part": {"index": self.part[0], "count": self.part[1]} if self.part else None,
            "settings": asdict(self.settings) if self.settings else None,
            "counts": {"embedded": self.counts[0], "failed": self.counts[1]},
            "shards": [s.to_dict() for s in self.shards],
            "complete": self.complete,
            "created": self.created,
            "msfkit_version": self.msfkit_version,
            "updated": self.updated,
            "plan": asdict(self.plan) if self.plan else None,
        }
        return {k: v for k, v in out.items() if v is not None or k in ("part", "source_root")}

    @classmethod
    def from_dict(cls, d: Any, where: object) -> Manifest:
        """The manifest read from the JSON object `d`, checked: one line naming `where` and the field."""
        if not isinstance(d, dict):
            raise MsfkitError(f"{where}: a store manifest is a JSON object, not {type(d).__name__}")
        version = d.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            hint = "; upgrade msfkit to read it" if type(version) is int and version > FORMAT_VERSION else ""
            raise MsfkitError(
                f"{where}: store format_version {version!r}; this msfkit reads {READABLE_VERSIONS}{hint}"
            )
        for key, kind in _REQUIRED.items():
            if not isinstance(d.get(key), kind) or (kind is int and isinstance(d.get(key), bool)):
                raise MsfkitError(f"{where}: field {key!r} must be a {kind.__name__}, not {d.get(key)!r}")
        try:
            m = d["model"]
            model = ModelRecord(m.get("name"), m.get("revision"), m.get("fingerprint"), m.get("config"))
            settings = EmbedSettings.from_dict(d["settings"]) if d.get("settings") else None
            plan = RunPlan(**d["plan"]) if d.get("plan") else None
            part = (d["part"]["index"], d["part"]["count"]) if d.get("part") else None
        except (TypeError, KeyError, AttributeError) as e:
            raise MsfkitError(f"{where}: malformed settings, plan or part ({e})") from None
        counts = d["counts"]
        return cls(
            model=model,
            dim=d["dim"],
            source_root=d.get("source_root"),
            settings=settings,
            part=part,
            counts=(counts.get("embedded", 0), counts.get("failed", 0)),
            shards=[_shard_entry(s, where) for s in d["shards"]],
            complete=bool(d.get("complete")),
            dtype=d["dtype"],
            normalized=d["normalized"],
            created=d.get("created"),
            updated=d.get("updated"),
            msfkit_version=d.get("msfkit_version"),
            plan=plan,
            format_version=version,
        )


_REQUIRED = {"model": dict, "dim": int, "dtype": str, "normalized": bool, "counts": dict, "shards": list}


def _shard_entry(s: Any, where: object) -> ShardEntry:
    name = s.get("name") if isinstance(s, dict) else None
    if not (isinstance(name, str) and name.isdigit() and isinstance(s.get("rows"), int)):
        raise MsfkitError(f"{where}: a shard entry needs a digit name and rows, not {s!r}")
    return ShardEntry(name, s["rows"], int(s.get("failed", 0)), int(s.get("generation", 0)))


def parts_hash(parts: list[tuple[Manifest, list[ShardEntry]]]) -> str:
    """The manifest hash of stores given as (manifest, committed shard entries) pairs: HASHED_KEYS,
    with counts and shards taken from the entries, so timestamps and settings do not count."""
    h = hashlib.sha256()
    for manifest, shards in parts:
        m = manifest.to_dict()
        m["shards"] = [s.to_dict() for s in shards]
        m["counts"] = {"embedded": sum(s.rows for s in shards), "failed": sum(s.failed for s in shards)}
        h.update(json.dumps({k: m.get(k) for k in HASHED_KEYS}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def shard_name(k: int) -> str:
    """Zero-padded file stem of shard `k`."""
    return f"{k:05d}"


def part_name(index: int, count: int) -> str:
    """Sub-folder name of the store written by `--shard index/count`."""
    return f"part-{index:05d}-of-{count:05d}"


def read_manifest(root: Path) -> Manifest | None:
    """The manifest of the store at `root` (checked), or None when there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MsfkitError(f"{path}: unreadable manifest ({e})") from None
    return Manifest.from_dict(data, path)


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically; it is written as today's format."""
    manifest.format_version = FORMAT_VERSION
    text = json.dumps(manifest.to_dict(), indent=1, default=str) + "\n"
    atomic_write(Path(root) / MANIFEST, lambda p: p.write_text(text))


def now() -> str:
    """A manifest timestamp: UTC, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_finite(vectors, first_row: int, where: object) -> None:
    """A one-line error naming the rows of `vectors` (numbered from `first_row`) that hold NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        shown = ", ".join(str(first_row + int(r)) for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise MsfkitError(f"{where}: rows {shown} hold non-finite values (NaN or inf); embed them again")
