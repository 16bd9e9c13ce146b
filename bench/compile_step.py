"""torch.compile against eager for the reproduction's MSF step, alternating, on this CPU.

    .venv/bin/python bench/compile_step.py                      # the fashion-mnist-small step
    .venv/bin/python bench/compile_step.py --precision fp32 --rounds 5

The step is the one `msfkit train` runs for `bench/reproduce_small.py`: ResNet18 (cifar-s2 stem),
32 px, batch 128, bank 16,384, k = 5, channels-last, SGD, on views already made (the device views
cost the same either way). Two models start from the same weights; the compiled one's networks are
compiled as `compile=true` compiles them (`net.compile()` on online, target and predictor). Rounds
alternate eager and compiled; the first (compiling) steps are timed apart. Before timing, one step of
each from the same state is compared: the loss and the updated weights must agree within the
precision's tolerance, or the compiled step is not the same step.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from msfkit.models.runtime import cpu_flags_line
from msfkit.training.msf import MSF


def step(model: MSF, opt, x_t, x_q, labels, bf16: bool) -> float:
    out = model(x_t, x_q, labels, 0.99, bf16)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    return out.loss.item()


def make_opt(model: MSF):
    params = [*model.online.parameters(), *model.predictor.parameters()]
    return torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--stem", default="cifar-s2")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--bank-size", type=int, default=16_384)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round and variant")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16"
    g = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    x_t = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    x_q = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    labels = torch.zeros(args.batch_size, dtype=torch.long)

    torch.manual_seed(0)
    eager = MSF(args.arch, args.stem, args.k, args.bank_size).to(memory_format=torch.channels_last).train()
    compiled = copy.deepcopy(eager)
    for net in (compiled.online, compiled.target, compiled.predictor):
        net.compile()
    opt_e, opt_c = make_opt(eager), make_opt(compiled)

    # the same step from the same state: loss and weights after it
    start = time.perf_counter()
    loss_c = step(compiled, opt_c, x_t, x_q, labels, bf16)
    first = time.perf_counter() - start
    loss_e = step(eager, opt_e, x_t, x_q, labels, bf16)
    w_e = torch.cat([p.detach().flatten() for p in eager.online.parameters()])
    w_c = torch.cat([p.detach().flatten() for p in compiled.online.parameters()])
    rel = float((w_e - w_c).norm() / w_e.norm())
    tol = 1e-2 if bf16 else 1e-4
    same = abs(loss_e - loss_c) <= tol * max(1.0, abs(loss_e)) and rel <= tol

    start = time.perf_counter()
    for _ in range(2):  # the rest of the warm-up (a second graph for the bank's steady state)
        step(compiled, opt_c, x_t, x_q, labels, bf16)
    warm = first + time.perf_counter() - start
    step(eager, opt_e, x_t, x_q, labels, bf16)

    rates: dict[str, list[float]] = {"eager": [], "compile": []}
    for _ in range(args.rounds):
        for name, (model, opt) in (("eager", (eager, opt_e)), ("compile", (compiled, opt_c))):
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model, opt, x_t, x_q, labels, bf16)
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))

    print(cpu_flags_line())
    print(
        f"{args.arch} ({args.stem} stem) {args.image_size} px, batch {args.batch_size}, bank "
        f"{args.bank_size:,}, k={args.k}, {args.precision}, {args.threads} threads; "
        f"{args.rounds} alternating rounds x {args.steps} steps"
    )
    print(
        f"one step from the same state: loss eager {loss_e:.5f}, compiled {loss_c:.5f}; "
        f"weights differ by {rel:.2e} (relative); {'same step' if same else 'NOT the same step'} "
        f"within {tol:g}"
    )
    print(f"compile + first 3 steps: {warm:.1f} s")
    for name, r in rates.items():
        print(f"{name:<8} images/s median {statistics.median(r):7.1f}  ({min(r):.1f}-{max(r):.1f})")
    ratios = [c / e for e, c in zip(rates["eager"], rates["compile"], strict=True)]
    print(
        f"compile / eager: median {statistics.median(ratios):.2f}x "
        f"(pairs {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
