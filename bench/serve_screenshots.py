"""The README's screenshots of `msfkit serve`, taken in headless Chromium on the demo's outputs.

    bash scripts/demo.sh                          # writes demo_out/
    .venv/bin/python bench/serve_screenshots.py   # -> docs/serve-search.png, serve-map.png, serve-dedup.png

Search view: the demo's Fashion-MNIST index, searched with the first test image of --query-class
uploaded through the page. Map view: the same index by PCA, coloured by label, with a lasso drawn
round a patch of the map's left part and the grid of the images inside it. Duplicates view: the
demo's photo index at the threshold the page starts at (the measured one, `/api/dedup/auto`, with
its explanation), or at `--threshold`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "demo_out", help="the demo's output folder")
    parser.add_argument("--query-class", default="sneaker")
    parser.add_argument("--threshold", default="auto", help="a similarity, or auto: where the page starts")
    parser.add_argument("--search-index", type=Path, help="instead of DEMO/index")
    parser.add_argument("--query", type=Path, help="instead of the first test image of --query-class")
    parser.add_argument("--dedup-index", type=Path, help="instead of DEMO/photo-index")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    import tempfile

    from tests.msfkit.serve import browser
    from tests.msfkit.serve.server import Server, server_env

    query = args.query or sorted((args.demo / "fashion-mnist" / "test" / args.query_class).glob("*.png"))[0]
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, browser.browser() as chromium:
        env = server_env(Path(tmp) / "cache", Path(tmp) / "hf")
        with Server(args.search_index or args.demo / "index", env) as server:
            page = chromium.new_page()
            page.set_viewport_size({"width": 1280, "height": 760})
            page.goto(server.url + "?page=30")
            page.set_input_files("#file", str(query))
            page.wait_for_function("document.querySelectorAll('#results .tile').length >= 12")
            page.wait_for_load_state("networkidle")
            out = args.output / "serve-search.png"
            page.screenshot(path=out)
            print(out)
            map_view(page, args.output / "serve-map.png")
        with Server(args.dedup_index or args.demo / "photo-index", env) as server:
            page = chromium.new_page()
            page.set_viewport_size({"width": 1280, "height": 760})
            page.goto(server.url + "#dedup")
            page.wait_for_function("document.querySelectorAll('.group').length > 0", timeout=600_000)
            if args.threshold != "auto":
                page.eval_on_selector(
                    "#threshold",
                    "(s, t) => { s.value = t; s.dispatchEvent(new Event('input'));"
                    " s.dispatchEvent(new Event('change')); }",
                    args.threshold,
                )
                page.wait_for_function(
                    f"document.querySelector('#dedup-status').textContent.includes('>= {args.threshold}')"
                )
            tiles = page.locator('.group[data-group="0"] .tile')
            if tiles.count() > 1:
                tiles.nth(1).click()  # a person's choice: keep the second of the first group
            page.wait_for_load_state("networkidle")
            out = args.output / "serve-dedup.png"
            page.screenshot(path=out)
            print(out)


def map_view(page, out: Path) -> None:
    """The map (PCA, by label) with a lasso drawn round a patch of its left part, and its grid."""
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(page.url.split("#")[0] + "#map")
    page.wait_for_function(
        "document.querySelector('#map-status').textContent.includes('drag a lasso')", timeout=600_000
    )
    box = page.locator("#map-canvas").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    lasso = [(0.30, 0.30), (0.42, 0.25), (0.48, 0.45), (0.40, 0.62), (0.28, 0.55)]
    page.mouse.move(x + lasso[0][0] * w, y + lasso[0][1] * h)
    page.mouse.down()
    for fx, fy in [*lasso[1:], lasso[0]]:
        page.mouse.move(x + fx * w, y + fy * h, steps=12)
    page.mouse.up()
    page.wait_for_function("document.querySelectorAll('#map-grid .tile').length > 0")
    page.wait_for_function(  # the first row's thumbnails (lazy images: loaded once laid out)
        "[...document.querySelectorAll('#map-grid img')].slice(0, 7).every(i => i.complete && i.naturalWidth)"
    )
    page.screenshot(path=out)
    print(out)


if __name__ == "__main__":
    main()
