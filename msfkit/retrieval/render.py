"""Search results as pictures: a contact-sheet PNG and a self-contained HTML gallery.

Both take the DataFrame of `msfkit.retrieval.search.search`. The contact sheet has one line per query: the
query image (framed), then its neighbours left to right, each captioned with rank and score. The
gallery page embeds every thumbnail as a data URI, so the one file can be mailed or archived.
An image that cannot be read shows as a grey tile saying so; a query given as a vector has none.
Given the index the results came from, a result row's image is read through
`msfkit.data.row_files` (only while it is the embedded file, inside its source), as the server does.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from msfkit.data.images import BadImageError, decode_image, load_image
from msfkit.data.paths import UnsafePath
from msfkit.data.row_files import read_row_file
from msfkit.data.storage import is_url
from msfkit.models.files import atomic_write
from msfkit.retrieval.search import COLUMNS

THUMB = 128  # tile side in pixels
PAD = 8  # space around tiles
CAPTION = 16  # caption strip under each tile
BACKGROUND = (255, 255, 255)
MISSING = (200, 200, 200)
QUERY_FRAME = (220, 40, 40)


def sheet_size(queries: int, neighbours: int, thumb: int = THUMB) -> tuple[int, int]:
    """(width, height) of a contact sheet with `queries` lines of 1 + `neighbours` tiles."""
    return PAD + (1 + neighbours) * (thumb + PAD), PAD + queries * (thumb + CAPTION + PAD)


def contact_sheet(results: pd.DataFrame, out: str | os.PathLike, thumb: int = THUMB, *, index=None) -> Path:
    """Draw the contact sheet of `results` into the PNG `out` (written under a temporary name);
    `index` (an `IndexFolder`): the results' rows are read as the server reads them."""
    groups = _groups(results)
    neighbours = int(results["rank"].max()) if len(results) else 0
    sheet = Image.new("RGB", sheet_size(len(groups), neighbours, thumb), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    tiles = _Tiles(thumb, index)
    for line, (name, image, hits) in enumerate(groups):
        y = PAD + line * (thumb + CAPTION + PAD)
        sheet.paste(tiles.get(image), (PAD, y))
        draw.rectangle((PAD - 2, y - 2, PAD + thumb + 1, y + thumb + 1), outline=QUERY_FRAME, width=2)
        draw.text((PAD, y + thumb + 2), _fit(Path(name).name, thumb), fill=QUERY_FRAME, font=font)
        for col, hit in enumerate(hits, start=1):
            x = PAD + col * (thumb + PAD)
            sheet.paste(tiles.get(hit.path, hit.row), (x, y))
            caption = f"{hit.rank}. {hit.score:.3f} {_label(hit)}".strip()
            draw.text((x, y + thumb + 2), _fit(caption, thumb), fill=(0, 0, 0), font=font)
    return _write(Path(out), lambda f: sheet.save(f, format="PNG"))


def gallery_html(
    results: pd.DataFrame,
    out: str | os.PathLike,
    thumb: int = 160,
    *,
    title: str = "msfkit search",
    index=None,
) -> Path:
    """Write one HTML page with every query and its neighbours, images embedded as data URIs;
    `index` as for `contact_sheet`."""
    tiles = _Tiles(thumb, index)
    parts = [
        "<!doctype html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>',
        "body{font-family:sans-serif;margin:1em}section{margin-bottom:1.5em}",
        f".row{{display:flex;flex-wrap:wrap;gap:8px}}figure{{margin:0;width:{thumb}px}}",
        "figcaption{font-size:12px;overflow-wrap:anywhere}.query img{outline:3px solid #d22}",
        f"</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for name, image, hits in _groups(results):
        parts.append(f'<section><h2>{html.escape(name)}</h2><div class="row">')
        parts.append(_figure(tiles.data_uri(image), "query", image or name, "query"))
        for hit in hits:
            caption = f"{hit.rank}. {hit.score:.4f} {_label(hit)} {Path(str(hit.path)).name}"
            parts.append(
                _figure(tiles.data_uri(hit.path, hit.row), caption, str(hit.path), "hit", link=hit.path)
            )
        parts.append("</div></section>")
    parts.append("</body></html>\n")
    text = "\n".join(parts)
    return _write(Path(out), lambda f: f.write(text.encode()))


def groups_as_results(groups: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """Dedup groups (`msfkit.retrieval.dedup`) in the shape of search results, for the two renderers:
    one line per group, its first image (index order) framed as the "query", the others after it
    with their best similarity in the group; at most `limit` images a line."""
    rows = []
    for group, members in groups.groupby("group", sort=True):
        members = members.sort_values("row")
        shown = members if limit is None else members.head(limit)
        name = f"group {group}: {len(members)} images"
        name += f" (first {limit})" if len(shown) < len(members) else ""
        first = str(shown["path"].iloc[0])
        rows += [{"query": name, "query_path": first, "rank": rank, "score": m.score,
                  "row": m.row, "path": str(m.path), "label": m.label}
                 for rank, m in enumerate(shown.iloc[1:].itertuples(), start=1)]  # fmt: skip
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def _figure(uri: str, caption: str, title: str, kind: str, link: str | None = None) -> str:
    img = f'<img src="{uri}" alt="{html.escape(title)}" title="{html.escape(title)}">'
    if link:  # the tile opens the original file (an object in object storage: its URL, as written)
        href = str(link) if is_url(str(link)) else Path(str(link)).absolute().as_uri()
        img = f'<a href="{html.escape(href)}">{img}</a>'
    return f'<figure class="{kind}">{img}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _label(hit) -> str:
    """The hit's label, or the name of its folder when it has none."""
    label = getattr(hit, "label", None)
    if isinstance(label, str) and label:
        return label
    return Path(str(hit.path)).parent.name if isinstance(hit.path, str) else ""


def _groups(results: pd.DataFrame) -> list[tuple[str, str | None, list]]:
    """(query name, query image, its result rows by rank) in the order the queries came."""
    out = []
    for name, hits in results.groupby("query", sort=False):
        image = hits["query_path"].iloc[0]
        out.append(
            (
                str(name),
                image if isinstance(image, str) else None,
                list(hits.sort_values("rank").itertuples()),
            )
        )
    return out


class _Tiles:
    """Square thumbnails, each image read once, unreadable ones a grey tile that says why."""

    def __init__(self, size: int, index=None) -> None:
        self.size = size
        self.index = index  # the IndexFolder the result rows come from, if known
        self.cache: dict[tuple, Image.Image] = {}
        self.uris: dict[tuple, str] = {}

    def get(self, path: str | None, row=None) -> Image.Image:
        key = (path, self._row(row))
        if key not in self.cache:
            self.cache[key] = self._make(*key)
        return self.cache[key]

    def data_uri(self, path: str | None, row=None) -> str:
        key = (path, self._row(row))
        if key not in self.uris:
            buf = io.BytesIO()
            self.get(*key).save(buf, format="JPEG", quality=85)
            self.uris[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        return self.uris[key]

    def _row(self, row) -> int | None:
        """An index row to read through its store's facts, or None (a query: the user's own file)."""
        return None if self.index is None or row is None or pd.isna(row) else int(row)

    def _make(self, path: str | None, row: int | None) -> Image.Image:
        tile = Image.new("RGB", (self.size, self.size), MISSING)
        if path is None:  # a query given as a vector
            ImageDraw.Draw(tile).text((4, 4), "no image", fill=(0, 0, 0))
            return tile
        try:
            if row is None:
                im = load_image(path, draft_size=self.size)
            else:
                im = decode_image(read_row_file(self.index.row_file(row)), draft_size=self.size).image
        except (BadImageError, UnsafePath) as e:
            ImageDraw.Draw(tile).text((4, 4), _fit(str(e), self.size), fill=(0, 0, 0))
            return tile
        im = fit_image(im, self.size)
        tile = Image.new("RGB", (self.size, self.size), BACKGROUND)
        tile.paste(im, ((self.size - im.width) // 2, (self.size - im.height) // 2))
        return tile


def fit_image(im: Image.Image, size: int) -> Image.Image:
    """`im` scaled so that its longest side is `size`, both ways: photos shrink (Lanczos), tiny images
    (a 28 px digit) grow with sharp pixels (nearest neighbour)."""
    scale = size / max(im.width, im.height)
    fitted = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(fitted, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)


def _fit(text: str, width: int) -> str:
    """Cut `text` to about what the default font shows in `width` pixels."""
    chars = max(4, width // 6)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _write(path: Path, write) -> Path:
    """`write(binary file)` into `path`, atomically; a missing folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def to_file(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_write(path, to_file)
