"""`--threshold auto`: a dedup threshold measured on the collection and its encoder, not guessed.

Distances are 1 - cosine similarity. On up to `SAMPLE` indexed images:

- How far is a copy? Each image is read back and copied four ways, as files (JPEG re-encoded at
  quality 70, resized to half, 2% cropped from every side, all three together), and the copies are
  embedded exactly as the collection was (the index's model and decoding settings). 99% of the
  copies lie within `copy_distance` of their original's stored vector (99% of the re-encoded ones
  alone within `mild_distance`), and each image has its own copy scale: its farthest copy.
- Which neighbours are copies? Those within `SLACK` x the larger copy scale of the two (an edit of
  either), and, through them, copies of copies (two edits of one original may be farther apart
  than either is from it). The farthest of them is a found copy.
- How close are distinct images? Each image's nearest neighbour beyond that: the closest over the
  sample is `distinct_distance`.

The threshold lies at the geometric midpoint between the copies (found and measured) and the
closest distinct images, never more than `FACTOR` x beyond the copies. A weak encoder puts distinct
images as close as copies: when that rules out the measured copies, the threshold keeps to the
copies found and says that stronger edits will be missed; when distinct images come closer than
even re-encoded copies, no threshold separates them and it says so rather than lump them.

    cal = calibrate(index)          # Calibration(threshold=0.9598, ...)
    print(cal.explain())
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from msfkit.data.images import BadImageError, decode_image
from msfkit.data.paths import UnsafePath
from msfkit.data.row_files import read_row_file
from msfkit.embedding.pipeline import embed_items
from msfkit.index.folder import IndexFolder
from msfkit.models.errors import MsfkitError
from msfkit.retrieval.components import components
from msfkit.retrieval.search import query_encoder, query_options

SAMPLE = 200  # images read back and copied; the encoder sees 5x as many
COPIES = ("re-encoded", "resized", "cropped", "all three")
FACTOR = 2.0  # a duplicate may be edited twice as far as the calibration's copies
SLACK = 1.5  # a neighbour within 1.5x an image's (or its own) farthest copy counts as a copy of it
NEIGHBOURS = 10  # looked at per sampled image


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold (None when copies and distinct images cannot be told apart) and why."""

    threshold: float | None
    copy_similarity: float  # 99% of the calibration's copies are at least this similar
    mild_similarity: float  # 99% of the re-encoded copies alone
    found_copies: int  # sampled images with an isolated copy in the collection
    found_similarity: float | None  # the least similar of those copies
    distinct_similarity: float | None  # the closest distinct pair's similarity ...
    closest_pair: tuple[str, str] | None  # ... and its two files
    closest_rows: tuple[int, int] | None  # ... and its two index rows
    images: int  # sampled images that could be read

    @property
    def misses_edits(self) -> bool:
        """True when the threshold had to leave out some of the calibration's copies."""
        return self.threshold is not None and self.threshold > self.copy_similarity

    def explain(self) -> str:
        copies = f"copies of {self.images} images (re-encoded, resized, cropped) score >= "
        copies += _sim(self.copy_similarity)
        if self.found_copies:
            copies += f"; {self.found_copies} images have a copy, scoring >= {_sim(self.found_similarity)}"
        pair = ", ".join(Path(p).name for p in self.closest_pair or ())
        distinct = f"the closest distinct images score {_sim(self.distinct_similarity)} ({pair})"
        if self.threshold is None:
            return (
                f"copies and distinct images are not separable with this encoder: {distinct}, as close "
                f"as re-encoded copies ({_sim(self.mild_similarity)}); give --threshold a number, or use "
                "a better encoder"
            )
        text = f"threshold auto: {_sim(self.threshold)} ({copies}; {distinct})"
        if self.misses_edits:
            text += (
                ". A weak encoder: distinct images come closer than some copies, so copies edited more "
                f"than the ones found (down to {_sim(self.copy_similarity)}) will be missed"
            )
        return text


def _sim(x: float | None) -> str:
    """A similarity with enough digits to tell it from its neighbours near 1 (0.95, 0.9991, 0.999817)."""
    if x is None:
        return "-"
    return f"{x:.{max(2, min(8, math.ceil(-math.log10(max(1 - x, 1e-8))) + 2))}f}"


def calibrate(
    index: IndexFolder,
    *,
    model=None,
    device: str | None = None,
    sample: int = SAMPLE,
    seed: int = 0,
) -> Calibration:
    """Measure copies and distinct neighbours on up to `sample` images of `index` (see module doc)."""
    encoder = query_encoder(index, model)
    pick = np.sort(np.random.default_rng(seed).choice(len(index), min(len(index), sample), replace=False))
    rows, originals, distances = _copy_distances(index, encoder, pick, device)
    own = distances.max(axis=1)  # each image's own copy scale
    copy_d = max(1e-7, float(np.quantile(distances, 0.99)))
    mild_d = max(1e-7, float(np.quantile(distances[:, 0], 0.99)))
    found, distinct = _neighbours(index, rows, originals, own)
    # no image with a neighbour beyond its own copies: every image would join one group
    closest = min(distinct or found, key=lambda x: x[0])
    far_copy = max([d for d, _ in found], default=None)
    lower = max(copy_d, far_copy or 0.0)
    if not distinct:
        tau = None
    elif lower < closest[0]:  # everything separates
        tau = min(math.sqrt(lower * closest[0]), FACTOR * lower)
    elif far_copy is not None and far_copy < closest[0]:  # the copies found do; stronger edits do not
        tau = math.sqrt(far_copy * closest[0])
    elif mild_d < closest[0]:  # re-encoded copies at least
        tau = math.sqrt(mild_d * closest[0])
    else:
        tau = None
    paths = index.absolute_paths(np.array(closest[1]))
    return Calibration(
        threshold=None if tau is None else round(1 - tau, 6),
        copy_similarity=1 - copy_d,
        mild_similarity=1 - mild_d,
        found_copies=len(found),
        found_similarity=None if far_copy is None else 1 - far_copy,
        distinct_similarity=1 - closest[0],
        closest_pair=(str(paths[0]), str(paths[1])),
        closest_rows=(int(closest[1][0]), int(closest[1][1])),
        images=len(rows),
    )


def _copy_distances(index: IndexFolder, encoder, pick: np.ndarray, device):
    """(rows read back, their stored vectors, (rows, COPIES) distances of each copy to its original)."""
    rows, files = [], []
    with tempfile.TemporaryDirectory(prefix="msfkit-calibrate-") as tmp:
        for row in pick.tolist():
            try:  # copies of the full-size image, as real copies are (draft decoding is the embedder's)
                image = decode_image(read_row_file(index.row_file(row))).image
            except (BadImageError, UnsafePath):
                continue  # a file gone, changed or moved out of its source since: calibrate on the others
            rows.append(row)
            files += _write_copies(image, Path(tmp) / f"{row}")
        if len(rows) < 2:
            raise MsfkitError("threshold auto: fewer than 2 indexed images could be read back; give a number")
        vectors, bad = embed_items(encoder, files, query_options(index, device))
    if bad:
        raise MsfkitError(f"threshold auto: a copy could not be embedded ({bad[0][1]}); give a number")
    originals = index.store.take(np.array(rows))
    copies = vectors.reshape(len(rows), len(COPIES), -1)
    return np.array(rows), originals, 1 - np.einsum("nd,nkd->nk", originals, copies).astype(np.float64)


def _write_copies(image: Image.Image, stem: Path) -> list[str]:
    files = []
    for name, (copy, quality) in zip(COPIES, copy_variants(image), strict=True):
        files.append(f"{stem}-{name.replace(' ', '-')}.jpg")
        copy.save(files[-1], format="JPEG", quality=quality)
    return files


def copy_variants(image: Image.Image) -> list[tuple[Image.Image, int]]:
    """The four copies of `image` that calibration compares with it, each with the JPEG quality it is
    saved at (order of `COPIES`): re-encoded, half size, 2% cropped per side, all three."""
    w, h = image.size
    dx, dy = round(0.02 * w), round(0.02 * h)
    cropped = image.crop((dx, dy, w - dx, h - dy))
    half = image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS)
    small = cropped.resize((max(1, cropped.width // 2), max(1, cropped.height // 2)))
    return [(image, 70), (half, 95), (cropped, 95), (small, 70)]


def _neighbours(index: IndexFolder, rows: np.ndarray, vectors: np.ndarray, scale: np.ndarray):
    """([(distance, (row, copy row))] of each image's farthest copy, [(distance, (row, other row))] of
    each image's nearest neighbour that is not a copy), from the stored `vectors` of `rows`."""
    scores, found = index.search_vectors(vectors, NEIGHBOURS + 1)
    own = np.zeros(len(index))
    own[rows] = scale
    valid = (found >= 0) & (found != rows[:, None])
    other_row = np.where(valid, found, 0)
    distance = 1 - scores.astype(np.float64)  # nearest first
    edit = np.maximum(np.maximum(own[rows][:, None], own[other_row]), 1e-7)  # an edit of one or the other
    near = valid & (distance <= SLACK * edit)
    root = components(len(index), np.broadcast_to(rows[:, None], found.shape)[near], found[near])
    same = valid & (root[other_row] == root[rows][:, None])
    copies, distinct = [], []
    for i, row in enumerate(rows.tolist()):
        if same[i].any():
            last = int(np.flatnonzero(same[i])[-1])
            copies.append((float(distance[i, last]), (row, int(found[i, last]))))
        if (valid[i] & ~same[i]).any():
            first = int(np.flatnonzero(valid[i] & ~same[i])[0])
            distinct.append((float(distance[i, first]), (row, int(found[i, first]))))
    if not copies and not distinct:
        raise MsfkitError("threshold auto: the index found no neighbours of the images looked at")
    return copies, distinct
