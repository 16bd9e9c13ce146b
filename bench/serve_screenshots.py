"""The README's screenshots of `msfkit serve`, taken in headless Chromium on the demo's outputs.

    bash scripts/demo.sh                                   # writes demo_out/
    .venv/bin/python bench/serve_screenshots.py            # -> docs/serve-search.png, docs/serve-dedup.png

Search view: the demo's Fashion-MNIST index, searched with the first test image of --query-class
uploaded through the page. Duplicates view: the demo's photo index at the threshold the page starts
at (the measured one, `/api/dedup/auto`, with its explanation), or at `--threshold`.
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


if __name__ == "__main__":
    main()
