"""Items -> uint8 crops, in decoding worker processes: what the embedding loop reads.

Sources are file paths (decoded with `msfkit.data.images.decode_image`, every bad file a reason)
or a dataset with an `image(i)` method (in-memory arrays, `msfkit.data.datasets`). Workers send
uint8 crops, a quarter of the bytes of floats. A file that cannot be decoded comes back as its
reason, never as an exception, so one bad file cannot stop a run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from msfkit.data.images import BadImageError, decode_image
from msfkit.models.preprocess import Preprocess
from msfkit.store.shards import FileFacts
from msfkit.store.writer import release_inherited_locks


@dataclass
class Batch:
    """Decoded items of one batch; `index` positions refer to the source given to `decode_batches`."""

    index: list[int]  # the items that decoded, in order; rows of `pixels`
    pixels: torch.Tensor | None  # uint8 (len(index), 3, S, S), None when every item failed
    facts: list[FileFacts]  # per decoded item
    failed: list[tuple[int, str]]  # (position, reason) per item that could not be decoded


class _Decode(torch.utils.data.Dataset):
    """Item i -> (i, uint8 crop, facts) or (i, None, reason)."""

    def __init__(self, source, prep: Preprocess, max_pixels: int, draft: bool) -> None:
        self.source, self.prep = source, prep
        self.max_pixels, self.draft_size = max_pixels, prep.resize if draft else None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        try:
            if _is_paths(self.source):
                d = decode_image(self.source[i], max_pixels=self.max_pixels, draft_size=self.draft_size)
                image, facts = d.image, FileFacts(d.width, d.height, d.bytes, d.mtime, d.mtime_ns)
            else:
                image = self.source.image(i)
                facts = FileFacts(image.width, image.height, 0, 0.0, 0)
            try:
                crop = self.prep.crop(image)
            except Exception as e:  # a pathological size (e.g. 1 x 100000) can break the resize
                raise BadImageError(f"cannot resize: {type(e).__name__}: {e}") from None
        except BadImageError as e:
            return i, None, str(e)
        return i, crop, facts


def _is_paths(source) -> bool:
    return isinstance(source, (list, tuple)) and (not source or isinstance(source[0], (str, os.PathLike)))


def _collate(items) -> Batch:
    good = [(i, x, facts) for i, x, facts in items if x is not None]
    failed = [(i, reason) for i, x, reason in items if x is None]
    pixels = torch.stack([x for _, x, _ in good]) if good else None
    return Batch([i for i, _, _ in good], pixels, [facts for _, _, facts in good], failed)


def decode_batches(
    source,
    prep: Preprocess,
    batches: Sequence[Sequence[int]],
    workers: int,
    *,
    max_pixels: int,
    draft: bool,
    pin_memory: bool,
) -> Iterator[Batch]:
    """Decode `source` (paths, or a dataset with `image(i)`) in the given batches of positions, in
    order, with `workers` processes. The workers start, and decode ahead, as soon as this returns."""
    loader = torch.utils.data.DataLoader(
        _Decode(source, prep, max_pixels, draft),
        batch_sampler=[list(b) for b in batches],
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_worker_init,
    )
    return iter(loader)


def _worker_init(_worker_id: int) -> None:
    release_inherited_locks()


def chunks(start: int, stop: int, size: int) -> list[list[int]]:
    """[start, stop) cut into consecutive lists of at most `size` positions."""
    return [list(range(i, min(i + size, stop))) for i in range(start, stop, size)]
