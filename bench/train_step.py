"""Images/s of the MSF training step against a plain BYOL-asym step, in the same run.

    .venv/bin/python bench/train_step.py --threads 1               # ResNet18, cifar stem, 32 px, CPU
    .venv/bin/python bench/train_step.py --device cuda --arch resnet50 --stem imagenet --image-size 224 \
        --batch-size 256 --bank-sizes 1024000 --steps 20               # what bench/gpu_train.sh runs

The baseline is asymmetric BYOL written without a bank: EMA, target and query embeddings, loss
2 - 2 cos(v, u), backward, SGD (as `msfkit train` makes it for the small-image recipe). The MSF
step (`msfkit.training.msf.MSF`, k = 5) adds the all-gather-free enqueue, the bank search and the
k-neighbour loss; the ratio is what they cost. The steps alternate round by round (bench/measure.py)
so that load from other processes hits all alike; a ratio is the median of those within each round.

    .venv/bin/python bench/train_step.py --pipeline --stem imagenet --batch-size 128   # the input pipeline
    .venv/bin/python bench/train_step.py --limit --profile 4 --stem cifar-s2 --batch-size 128 \
        --bank-sizes 16384 --threads 2 --steps 10      # the reproduction's step against the FLOP limit

`--limit` adds to every round the matmul limit of the step's precision (bench/measure.py, a square
matmul with the same threads) and prints each step's FLOPs per image (torch's FLOP counter over one
step on a copy of the model: the target's forward, the online network's and the predictor's forward
and backward, the bank search) and its share of that limit, per round. `--profile N` then runs N
more steps of the first MSF variant under `torch.profiler` and prints the ops that took the most
self CPU time: where the step loses against the limit.

`--pipeline` measures instead, alternating round by round: (a) the MSF step alone on views already
made, (b) the training loop's step fed as `augment_on=workers` feeds it (PIL views in `--workers`
loader processes), (c) fed as `augment_on=device` does (uint8 batches, views made on the device), each
with the CPU threads `msfkit train` would give it; the first step of each round is not timed.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import alternate, gflop_of, matmul_limit, per_round, spread  # noqa: E402
from msfkit.models.runtime import cpu_flags_line  # noqa: E402
from msfkit.training.config import SMALL_IMAGES, TrainConfig  # noqa: E402
from msfkit.training.ema import ema_update_  # noqa: E402
from msfkit.training.msf import MSF  # noqa: E402


def byol_asym_step(model: MSF, x_t, x_q, bf16: bool) -> torch.Tensor:
    """The baseline: MSF's networks and EMA, no bank (the target is the only 'neighbour')."""
    ema_update_(model.target, model.online, 0.99)
    with torch.autocast(x_q.device.type, dtype=torch.bfloat16, enabled=bf16):
        with torch.no_grad():
            u = F.normalize(model.target(x_t).float(), dim=1)
        v = F.normalize(model.predictor(model.online(x_q)).float(), dim=1)
    return (2 - 2 * (v * u).sum(1)).mean()


def msf_step(model: MSF, x_t, x_q, bf16: bool) -> torch.Tensor:
    return model(x_t, x_q, torch.zeros(len(x_t), dtype=torch.long, device=x_t.device), 0.99, bf16).loss


def timed(step, model, opt, x_t, x_q, bf16: bool, steps: int) -> float:
    """Images per second over `steps` optimiser steps."""
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(model, x_t, x_q, bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x_t.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x_t) / (time.perf_counter() - start)


def make_opt(model: MSF) -> torch.optim.SGD:
    """SGD over the online network and the predictor, as `msfkit train` makes it for the small-image
    recipe (its lr, momentum and weight decay)."""
    params = [*model.online.parameters(), *model.predictor.parameters()]
    lr, decay = SMALL_IMAGES["lr"], SMALL_IMAGES["weight_decay"]
    return torch.optim.SGD(params, lr=lr, momentum=TrainConfig.momentum, weight_decay=decay)


def step_gflop(step, model: MSF, x_t, x_q, bf16: bool) -> float:
    """GFLOPs of one image's share of a step's forward and backward, counted on a copy of the model."""
    twin = copy.deepcopy(model)
    return gflop_of(lambda: step(twin, x_t, x_q, bf16).backward()) / len(x_t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--stem", default="cifar")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bank-sizes", type=int, nargs="+", default=[16_384, 1_024_000])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--steps", type=int, default=4, help="steps per round and variant")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile the networks (as compile=true does)"
    )
    ap.add_argument("--limit", action="store_true", help="FLOPs per image against the matmul limit")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="profile N steps of MSF after")
    ap.add_argument("--pipeline", action="store_true", help="step alone vs loop with worker/device views")
    ap.add_argument("--workers", type=int, default=1, help="--pipeline: loader processes of (b)")
    args = ap.parse_args()
    if args.pipeline:
        return pipeline(args)
    bf16 = args.precision == "bf16"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    x_t = torch.randn(shape, generator=g).to(device, memory_format=torch.channels_last)
    x_q = torch.randn(shape, generator=g).to(device, memory_format=torch.channels_last)

    variants = {"byol-asym (no bank)": (byol_asym_step, args.bank_sizes[0], 1)}
    for n in args.bank_sizes:
        variants[f"msf k={args.k}, bank {n:,}"] = (msf_step, n, args.k)
    models, gflops = {}, {}
    for name, (step, bank, k) in variants.items():
        torch.manual_seed(0)
        model = MSF(args.arch, args.stem, k, bank).to(device, memory_format=torch.channels_last).train()
        if args.limit:  # counted eagerly, before any compile
            gflops[name] = step_gflop(step, model, x_t, x_q, bf16)
        if args.compile:
            for net in (model.online, model.target, model.predictor):
                net.compile()
        opt = make_opt(model)
        timed(step, model, opt, x_t, x_q, bf16, 3 if args.compile else 1)  # warm-up: allocator, kernels
        models[name] = (step, model, opt)
    runs = {
        name: lambda s=step, m=model, o=opt: timed(s, m, o, x_t, x_q, bf16, args.steps)
        for name, (step, model, opt) in models.items()
    }
    limit = f"matmul limit ({args.precision})"
    if args.limit:
        runs[limit] = lambda: matmul_limit(args.precision, device)
    rates = alternate(runs, args.rounds)

    print(cpu_flags_line())
    print(
        f"{args.arch} ({args.stem} stem) {args.image_size} px, batch {args.batch_size}, {args.precision}, "
        f"{_device_name(device)}, {args.rounds} alternating rounds x {args.steps} steps, median (min-max)"
        + (", torch.compile" if args.compile else "")
    )
    base = rates["byol-asym (no bank)"]
    extra = f"{'GFLOP/image':>12} {'of the limit':>20}" if args.limit else ""
    print(f"{'step':<34} {'images/s':>22} {'vs byol-asym':>20} {extra}")
    for name in models:
        line = f"{name:<34} {spread(rates[name]):>22} "
        line += f"{spread(per_round(rates[name], base, lambda a, b: a / b), '{:.2f}'):>20}"
        if args.limit:
            share = per_round(rates[name], rates[limit], lambda r, lim, f=gflops[name]: r * f / lim)
            line += f" {gflops[name]:>12.3f} {spread(share, '{:.1%}'):>20}"
        print(line)
    if args.limit:
        print(f"{limit}: {spread(rates[limit], '{:,.0f}')} GFLOP/s")
    if args.profile:
        name = next(n for n in models if n.startswith("msf"))
        step, model, opt = models[name]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            timed(step, model, opt, x_t, x_q, bf16, args.profile)
        print(f"\n{name}, {args.profile} steps under torch.profiler, the ops by self CPU time:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def pipeline(args) -> None:
    """(a) step alone, (b) loop with PIL views in workers, (c) loop with device views: images/s."""
    from msfkit.runtime import Ranks
    from msfkit.training.batches import EpochBatches, make_loader
    from msfkit.training.config import make_config
    from msfkit.training.data import first, open_dataset
    from msfkit.training.distributed import all_finite

    device, bf16, batch = torch.device(args.device), args.precision == "bf16", args.batch_size
    cores = len(os.sched_getaffinity(0))
    data = first(open_dataset("fashion-mnist"), batch * (args.steps + 1))
    base = dict(data="fashion-mnist", arch=args.arch, stem=args.stem, image_size=args.image_size)
    base.update(batch_size=batch, precision=args.precision, workers=args.workers, device=args.device)
    torch.manual_seed(0)
    model = MSF(args.arch, args.stem, args.k, args.bank_sizes[0]).to(
        device, memory_format=torch.channels_last
    )
    opt = make_opt(model)
    g = torch.Generator().manual_seed(0)
    shape = (batch, 3, args.image_size, args.image_size)
    x_t, x_q = (torch.randn(shape, generator=g).to(device, memory_format=torch.channels_last) for _ in "tq")

    def step_alone(_: int) -> float:
        torch.set_num_threads(args.threads or cores)
        return timed(msf_step, model.train(), opt, x_t, x_q, bf16, args.steps)

    def loop(kind: str):
        def rate(epoch: int) -> float:
            cfg = make_config({**base, "augment_on": kind})
            sampler = EpochBatches(len(data), batch, Ranks(), seed=0)
            loader, views, workers = make_loader(cfg, data, sampler, device)
            torch.set_num_threads(args.threads or max(1, cores - workers))  # as `msfkit train` does
            sampler.set_epoch(epoch)
            views.set_epoch(epoch)
            stamps: list[float] = []

            model.train()
            for target, query, labels in loader:  # the step of training.loop.train_one_epoch
                target = target.to(device, non_blocking=True, memory_format=torch.channels_last)
                query = query.to(device, non_blocking=True, memory_format=torch.channels_last)
                loss = model(target, query, labels.to(device), 0.99, bf16).loss
                if not all_finite(loss):
                    raise SystemExit(f"non-finite loss ({loss.item()})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                stamps.append(time.perf_counter())
            return (len(stamps) - 1) * batch / (stamps[-1] - stamps[0])

        return rate

    variants = {
        "(a) MSF step alone, views ready": step_alone,
        f"(b) loop, PIL views in {args.workers} worker(s)": loop("workers"),
        "(c) loop, views on the device": loop("device"),
    }
    for run in variants.values():  # warm-up: allocator, kernels, first worker start
        run(0)
    epochs = itertools.count(1)  # each run of a loop is an epoch of its own (its own shuffle)
    rates = alternate(
        {name: lambda run=run: run(next(epochs)) for name, run in variants.items()}, args.rounds
    )
    print(
        f"{args.arch} ({args.stem} stem) {args.image_size} px, batch {batch}, {args.precision}, "
        f"{_device_name(device)} ({cores} cores), {args.rounds} alternating rounds x {args.steps} timed steps"
    )
    print(f"{'variant':<40} {'median img/s':>12} {'min-max':>15}  rounds")
    medians = {}
    for name, r in rates.items():
        medians[name] = m = float(np.median(r))
        print(f"{name:<40} {m:>12.1f} {min(r):>7.1f}-{max(r):<7.1f}  {' '.join(f'{x:.0f}' for x in r)}")
    a, b, c = medians.values()
    print(f"(c)/(a) = {c / a:.2f}   (c)/(b) = {c / b:.2f}   (b)/(a) = {b / a:.2f}")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
