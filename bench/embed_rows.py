"""The rows of bench/embed.py: each a function that times one way of embedding the photos, once a
round (bench/embed.py's docstring says what each measures)."""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.command_cost import measure
from bench.command_cost import msfkit_command as msfkit_cli
from bench.measure import matmul_limit
from bench.naive_embed import load, naive_loop
from msfkit.embedding import EmbedOptions, embed
from msfkit.embedding.forward import Forward
from msfkit.models import Encoder
from msfkit.store import open_store

REPO = Path(__file__).resolve().parents[1]
NAIVE_PROCESS = "naive loop process (fp32)"


@dataclass
class Job:
    """What every row of one bench run shares."""

    encoder: Encoder
    paths: list[Path]
    folder: Path  # the photos
    tmp: Path  # the model folder, the outputs of each run, msfkit's cache (the packages)
    args: argparse.Namespace
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # the last round's, by precision or "naive"
    # model-only compiled rows: seconds to get the package, by precision and "built" or "loaded", a round
    package_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    peak_mib: dict[str, list[float]] = field(default_factory=dict)  # whole-process rows: peak memory, a round
    outputs: itertools.count = field(default_factory=itertools.count)

    @property
    def device(self) -> torch.device:
        return torch.device(self.args.device)

    @property
    def batch(self) -> int:
        """msfkit's batch size: as asked, else its default (256 on a GPU, 32 on a CPU)."""
        return self.args.batch_size or (256 if self.device.type == "cuda" else 32)

    def output(self) -> Path:
        """A path not used before, for one run's store or vectors."""
        return self.tmp / f"out-{next(self.outputs)}"


def naive(job: Job) -> float:
    """Seconds of bench/naive_embed.py's loop over all the photos in this process, after a warm-up batch."""
    net, tf = load(job.tmp / "model")
    batch = job.args.batch_size or 32
    naive_loop(net, tf, job.paths[:batch], batch, job.device)
    start = time.perf_counter()
    job.vectors["naive"] = naive_loop(net, tf, job.paths, batch, job.device)
    return time.perf_counter() - start


def model_only(job: Job, precision: str, compiled: bool) -> Callable[[], float]:
    """Seconds for all the photos at the rate of random uint8 crops through the model as msfkit runs
    it (measured on 4 batches at most, after a warm-up batch); getting the compiled model's package
    (built the first time, loaded from msfkit's cache after) is timed apart into `package_s`."""

    def run() -> float:
        job.encoder.eval().to(job.device, memory_format=torch.channels_last)
        forward = Forward(job.encoder, precision, job.batch, compiled=compiled)
        if compiled:
            if not forward.compiled:
                sys.exit("the compiled path fell back to eager: see the line above")
            done, seconds = forward.setup
            job.package_s.setdefault(precision, {}).setdefault(done, []).append(seconds)
        size = job.encoder.config.image_size
        x = torch.randint(0, 256, (job.batch, 3, size, size), dtype=torch.uint8)
        forward(x)  # warm-up: Forward returns numpy rows, so the device is done
        n, m = len(job.paths), min(len(job.paths), 4 * job.batch)
        start = time.perf_counter()
        for i in range(0, m, job.batch):
            forward(x[: min(job.batch, m - i)])
        return (time.perf_counter() - start) * n / m

    return run


def msfkit_embed(job: Job, precision: str, half: bool) -> Callable[[], float]:
    """Seconds of `msfkit.embedding.embed` over all the photos, or the first half of them; the two
    load the compiled model alike (as a job of all the photos would), so their difference is the
    steady state."""
    choice = {"auto": None, "yes": True, "no": False}[job.args.compiled]
    compiled = EmbedOptions(compiled=choice).use_compiled(-(-len(job.paths) // job.batch))

    def run() -> float:
        a = job.args
        opts = EmbedOptions(precision=precision, device=a.device, draft=a.draft, compiled=compiled)
        opts.batch_size, opts.workers = a.batch_size, a.workers
        out = job.output()
        start = time.perf_counter()
        embed([str(p) for p in job.paths[: len(job.paths) // 2 if half else None]], job.encoder, out, opts)
        seconds = time.perf_counter() - start
        if not half:
            job.vectors[precision] = np.array(open_store(out).vectors)
        shutil.rmtree(out)
        return seconds

    return run


def whole_process(job: Job, name: str, command: Callable[[Path], list[str]]) -> Callable[[], float]:
    """Seconds of a command in a process of its own (bench/command_cost.py), start-up included,
    writing into a new output path; its peak memory goes to `job.peak_mib[name]`."""

    def run() -> float:
        out, log = job.output(), job.tmp / "command.log"
        cost = measure(command(out), log=log)
        if cost.exit_code != 0:
            sys.exit(f"{name} failed (exit {cost.exit_code}):\n{log.read_text()[-3000:]}")
        job.peak_mib.setdefault(name, []).append(cost.peak_mib)
        shutil.rmtree(out)
        return cost.seconds

    return run


def msfkit_command(job: Job, precision: str) -> Callable[[Path], list[str]]:
    """The installed `msfkit embed` over the photo folder, as a user types it."""
    a = job.args
    command = [*msfkit_cli(), "embed", str(job.folder), "-m", str(job.tmp / "model"), "-q"]
    command += ["--precision", precision, "--device", a.device] + (["--draft"] if a.draft else [])
    for option, value in (("--batch-size", a.batch_size), ("--workers", a.workers)):
        command += [option, str(value)] if value is not None else []
    return lambda out: [*command, "-o", str(out)]


def naive_command(job: Job) -> Callable[[Path], list[str]]:
    """bench/naive_embed.py over the photo folder, as a process of its own (its vectors in OUT)."""
    script = [sys.executable, str(REPO / "bench" / "naive_embed.py"), str(job.tmp / "model"), str(job.folder)]
    options = ["--batch-size", str(job.args.batch_size or 32), "--device", job.args.device]
    return lambda out: [*script, str(out / "vectors.npy"), *options]


def gpu_decode(job: Job, precision: str = "bf16") -> float:
    """Files read by DataLoader workers, decoded by nvJPEG on the GPU, resized and cropped there."""
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    paths = job.paths

    class Raw(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return torch.frombuffer(bytearray(paths[i].read_bytes()), dtype=torch.uint8)

    c, prep = job.encoder.config, job.encoder.preprocess
    model = job.encoder.eval().to("cuda", memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(Raw(), batch_size=job.batch, num_workers=8, collate_fn=list)
    start = time.perf_counter()
    with torch.inference_mode():
        for raw in loader:
            images = decode_jpeg(raw, device="cuda")
            crops = [TF.center_crop(TF.resize(im, c.resize, antialias=True), c.image_size) for im in images]
            model.embed_batch(prep.normalize(torch.stack(crops)), precision).cpu()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def rows(job: Job) -> dict[str, Callable[[], float]]:
    """Every row of a round, by name: GFLOP/s for the matmul limits, seconds for all the photos else."""
    runs: dict[str, Callable[[], float]] = {}
    precisions = job.args.precisions
    if not job.args.only_cli:
        for precision in precisions:
            runs[f"matmul limit ({precision})"] = lambda p=precision: matmul_limit(p, job.device)
        runs["naive loop (fp32)"] = lambda: naive(job)
        for precision in precisions:
            for compiled in (False, True) if job.device.type == "cpu" else (False,):
                name = f"model only, {'compiled' if compiled else 'eager'} ({precision})"
                runs[name] = model_only(job, precision, compiled)
            runs[f"msfkit embed ({precision})"] = msfkit_embed(job, precision, half=False)
            runs[f"msfkit embed, first half ({precision})"] = msfkit_embed(job, precision, half=True)
    if not job.args.no_cli:
        runs[NAIVE_PROCESS] = whole_process(job, NAIVE_PROCESS, naive_command(job))
        for precision in precisions:
            name = f"msfkit embed --precision {precision}"
            runs[name] = whole_process(job, name, msfkit_command(job, precision))
    if job.args.gpu_decode:
        runs["nvJPEG decode + model (bf16)"] = lambda: gpu_decode(job)
    return runs
