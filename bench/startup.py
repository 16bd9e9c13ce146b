"""Whole-process seconds of msfkit's quick commands against a bare `import torch, torchvision`, in
alternating rounds: what a user waits for before the answer.

    .venv/bin/python bench/startup.py                    # ResNet50 at 224 px, 3 rounds
    .venv/bin/python bench/startup.py --rounds 1 --arch resnet18 --image-size 64   # a quick check

First, untimed, in a temporary folder: a model folder of random weights (`msfkit models init`), a
store of 16 generated JPEGs (`msfkit embed`) and its exact index (`msfkit index --type flat`), and
one `msfkit -h`, which keeps the page in msfkit's cache for the later ones, as a user's first does. Then
each round runs every command once, the order reversed every other round (bench/measure.py), each
the installed `msfkit` in a new process, its output discarded:

    msfkit --version / msfkit -h
    msfkit search INDEX STORE:0        a stored row as the query: no model needed
    msfkit search INDEX query.jpg      an image: the model is loaded and embeds it
    python -c "import torch, torchvision"   the reference: what importing them costs here

and prints each one's median and min-max over the rounds, the speed issue's goals (PASS or MISS),
and which of the costly modules (HEAVY: torch, torchvision, torch._dynamo, huggingface_hub, pandas)
each command imported: one more run of it, untimed, in an interpreter that names them at exit.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.command_cost import measure, msfkit_command  # noqa: E402
from bench.measure import alternate, goal, spread  # noqa: E402
from msfkit.models.runtime import cpu_flags_line  # noqa: E402

MSFKIT = msfkit_command()  # the installed script
# what a quick command should not pay for unless it needs it: torch ~2 s, torch._dynamo (pulled in by
# torchvision's ops or the meta device) ~1.5 s, pandas and huggingface_hub ~0.3 s each
HEAVY = ("huggingface_hub", "pandas", "torch", "torch._dynamo", "torchvision")
GOALS = {"--version": 0.05, "-h": 0.05, "store row": 1.0, "query image": 2.5}  # seconds, at most


def build(tmp: Path, arch: str, image_size: int) -> tuple[Path, Path, Path]:
    """A model folder, a store of 16 generated JPEGs and their exact index, with msfkit's own
    commands, and the help page kept (untimed): (index, store, one of the JPEGs)."""
    photos = tmp / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        pixels = rng.integers(0, 256, (96 + 8 * i, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{i:02d}.jpg", quality=90)
    model, store, index = tmp / "model", tmp / "store", tmp / "index"
    for command in (
        ["models", "init", arch, str(model), "--image-size", str(image_size)],
        ["embed", str(photos), "-m", str(model), "-o", str(store), "-q"],
        ["index", str(store), "-o", str(index), "--type", "flat"],
        ["-h"],  # the first `msfkit -h` renders the page with click and keeps it (msfkit/cli/__init__.py)
    ):
        subprocess.run([*MSFKIT, *command], check=True, stdout=subprocess.DEVNULL)
    return index, store, photos / "00.jpg"


def timed(argv: list[str], log: Path) -> float:
    """Seconds of one process running `argv`, start to exit (bench/command_cost.py; output to `log`)."""
    cost = measure(argv, log)
    if cost.exit_code != 0:
        sys.exit(f"{' '.join(argv)} failed (exit {cost.exit_code}):\n{log.read_text()[-3000:]}")
    return cost.seconds


def imported(argv: list[str]) -> list[str]:
    """Which modules of HEAVY the process of `argv` imports: it runs once more, in an
    interpreter that runs the same code and names them at exit."""
    if argv[: len(MSFKIT)] == MSFKIT:  # the installed script's own call, with its arguments
        code = f"sys.argv = ['msfkit', *{argv[len(MSFKIT) :]!r}]\nfrom msfkit.cli import main\nmain()"
    else:  # python -c CODE
        code = argv[2]
    said = f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    wrapped = f"import sys\ntry:\n{textwrap.indent(code, '    ')}\nfinally:\n    {said}\n"
    done = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=True)
    return ast.literal_eval(done.stderr.strip().splitlines()[-1])  # the list the wrapper printed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50", help="the model of the query-image search")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of every command")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index, store, query = build(Path(tmp), args.arch, args.image_size)
        commands = {
            "--version": [*MSFKIT, "--version"],
            "-h": [*MSFKIT, "-h"],
            "store row": [*MSFKIT, "search", str(index), f"{store}:0", "-k", "5"],
            "query image": [*MSFKIT, "search", str(index), str(query), "-k", "5"],
            "import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
        }
        log = Path(tmp) / "command.log"
        results = alternate(
            {name: lambda a=argv: timed(a, log) for name, argv in commands.items()}, args.rounds
        )
        loaded = {name: imported(argv) for name, argv in commands.items()}

    print(cpu_flags_line())
    print(f"{args.rounds} alternating rounds, whole process, seconds: median (min-max); {args.arch} at "
          f"{args.image_size} px for the query image")  # fmt: skip
    for name, argv in commands.items():
        shown = " ".join(Path(a).name if i == 0 or a.startswith(tmp) else a for i, a in enumerate(argv))
        heavy = ", ".join(loaded[name]) or "none of them"
        print(f"{name:26}{spread(results[name], '{:.3f}'):>20}  imports {heavy}: {shown}")
    print("\ngoals (the speed issue's):")
    for name, limit in GOALS.items():
        print(goal(f"{name}, seconds", results[name], limit, "{:.3f}", at_most=True))


if __name__ == "__main__":
    main()
