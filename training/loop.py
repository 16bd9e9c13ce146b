"""MSF pre-training: set-up, `train_one_epoch`, checkpoints, monitors, and the model folder at the end.

    msfkit train --preset fashion-mnist                          # ResNet18, 32 px, CPU or GPU
    msfkit train data=/imagenet/train val_data=/imagenet/val     # the paper's ResNet50 recipe
    torchrun --nproc_per_node 4 -m msfkit.cli train ...     # DDP, global memory bank
    msfkit train --resume out=runs/msf                           # continue from runs/msf/checkpoint.pt

A run folder holds checkpoint.pt, metrics.csv, tb/ (TensorBoard) and, at the end, model/ (the
online backbone as an msfkit model folder). Schedules are precomputed per step. The data order
and every augmentation are functions of (seed, epoch, index), so a resumed run repeats exactly
what an uninterrupted one would have done.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from msfkit.models.errors import MsfkitError
from msfkit.models.files import is_disk_full
from msfkit.models.runtime import autocast_bf16, resolve_device, slow_bf16_warning
from msfkit.runtime import Ranks
from msfkit.training.bad_files import BAD_FILES_NAME, BadFiles, skip_bad
from msfkit.training.batches import EpochBatches, make_loader
from msfkit.training.checkpoint import CHECKPOINT_NAME, resume_run, save_checkpoint
from msfkit.training.config import TrainConfig
from msfkit.training.data import first, open_dataset
from msfkit.training.distributed import (
    all_finite,
    any_rank,
    wrap_ddp,
)
from msfkit.training.export import export_model
from msfkit.training.init import load_init, start_from
from msfkit.training.monitor import KnnMonitor, RunLog
from msfkit.training.msf import MSF
from msfkit.training.progress import Progress, how_it_ended, terminate
from msfkit.training.schedules import schedules


class NonFiniteLoss(MsfkitError):
    """The loss became NaN or infinite: the run stops and keeps its last good checkpoint."""


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    lrs: np.ndarray,
    momentums: np.ndarray,
    step: int,
    device: torch.device,
    cfg: TrainConfig,
    on_step,
) -> int:
    """Run the loader's batches until `on_step(step, out)` says stop; returns the step count reached."""
    bf16 = use_bf16(cfg, device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.train()
    for x_target, x_query, labels in loader:
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        x_target = x_target.to(device, non_blocking=True, memory_format=memory_format)
        x_query = x_query.to(device, non_blocking=True, memory_format=memory_format)
        out = model(x_target, x_query, labels.to(device), float(momentums[step]), bf16)
        if not all_finite(out.loss):
            raise NonFiniteLoss(f"loss is {out.loss.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        step += 1
        if on_step(step, out):
            break
    return step


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path | None:
    """Train (or resume) the run `cfg.out`; returns its model folder (None on ranks other than 0)."""
    device = resolve_device(cfg.device)
    d = Ranks.from_env(device.type)
    threads = torch.get_num_threads()
    on_term = threading.current_thread() is threading.main_thread()  # handlers live in the main thread
    previous = signal.signal(signal.SIGTERM, terminate) if on_term else None
    try:
        return _train(cfg, resume, progress, device, d)
    except OSError as e:  # metrics.csv, bad_files.csv (checkpoints and model folders say so themselves)
        if not is_disk_full(e, cfg.out):
            raise
        raise MsfkitError(
            f"disk full: cannot write {e.filename or cfg.out}; free space there and run again"
        ) from None
    finally:
        torch.set_num_threads(threads)
        if on_term:
            signal.signal(signal.SIGTERM, previous)
        d.close()


def _train(cfg: TrainConfig, resume: bool, progress: bool, device: torch.device, d: Ranks) -> Path | None:
    run = Path(cfg.out)
    ckpt_path = run / CHECKPOINT_NAME
    if not resume and ckpt_path.exists():
        raise MsfkitError(f"{run} already holds a run: pass --resume to continue it, or choose another out=")
    if cfg.sync_bn and device.type != "cuda":
        raise MsfkitError("sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
    if cfg.batch_size % d.world:
        raise MsfkitError(f"batch_size={cfg.batch_size} does not split over {d.world} processes")
    cfg, init, note = load_init(cfg) if not resume else (cfg, None, "")  # a resume has it in its checkpoint
    torch.manual_seed(cfg.seed)
    run.mkdir(parents=True, exist_ok=True)  # bad_files.csv may be written by the first batch
    data = skip_bad(first(open_dataset(cfg.data), cfg.limit), run)
    bad = BadFiles(run / BAD_FILES_NAME)
    sampler = EpochBatches(len(data), cfg.batch_size, d, cfg.seed)
    loader, views, workers = make_loader(cfg, data, sampler, device)
    if device.type == "cpu":
        # OpenMP threads that outnumber the free cores spin against the data workers: 5-10x slower
        cores = len(os.sched_getaffinity(0)) // d.world
        torch.set_num_threads(cfg.threads or max(1, min(torch.get_num_threads(), cores - workers)))
    steps_per_epoch = len(data) // cfg.batch_size
    if steps_per_epoch == 0:
        raise MsfkitError(
            f"{len(data)} training images is fewer than one batch (batch_size={cfg.batch_size})"
        )
    total = cfg.epochs * steps_per_epoch
    stop = min(total, cfg.max_steps) if cfg.max_steps else total

    model = MSF(cfg.arch, cfg.stem, cfg.k, cfg.bank_size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [*model.online.parameters(), *model.predictor.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    step, last_saved, metrics = 0, None, {}
    if init is not None:
        metrics["init"] = start_from(model, init)
    if resume:
        step, metrics = resume_run(ckpt_path, model, optimizer, steps_per_epoch)
        last_saved = step
    if cfg.compile:
        for net in (model.online, model.target, model.predictor):
            net.compile()
    ddp = wrap_ddp(model, d, device, cfg.sync_bn)

    lrs, momentums = schedules(cfg, steps_per_epoch)
    log = RunLog(run, step, d.is_main)
    monitor = (
        KnnMonitor(cfg, device, use_bf16(cfg, device))
        if d.is_main and cfg.knn_every and cfg.val_data
        else None
    )

    def save(at: int) -> None:
        nonlocal last_saved
        if not all(torch.isfinite(p).all() for p in params):  # on every rank, so that all stop
            raise NonFiniteLoss(f"weights are not finite after step {at}")
        if d.is_main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": at,
                "epoch": math.ceil(at / steps_per_epoch),
                "steps_per_epoch": steps_per_epoch,
                "config": cfg.to_dict(),
                "metrics": metrics,
            }
            save_checkpoint(ckpt_path, state)
        last_saved = at

    bar = Progress(cfg, step=step, stop=stop, steps_per_epoch=steps_per_epoch, bar=progress, show=d.is_main)
    if resume:
        bar.resumed(step)
    for line in (note, slow_bf16_warning(cfg.precision, device)):
        if line:
            bar.write(line)
    window = {"loss": 0.0, "purity": 0.0, "n": 0, "t": time.perf_counter()}
    # training minutes (the k-NN monitor's time left out), continued over resumes: the curve's x axis
    clock = {"start": time.perf_counter(), "monitor": 0.0, "before": float(metrics.get("minutes", 0.0))}

    def minutes() -> float:
        return clock["before"] + (time.perf_counter() - clock["start"] - clock["monitor"]) / 60

    def knn(at: int) -> None:
        if at and metrics.get("knn", {}).get("step") == at:
            return  # knn_every_steps already scored this step (an epoch's end)
        t, now = time.perf_counter(), minutes()
        top1 = monitor(model)
        key = "knn" if at else "knn_random_init"
        metrics[key] = {"k": cfg.knn_k, "top1": top1, "step": at, **monitor.sizes}
        epoch = (at - 1) // steps_per_epoch + 1
        log.write({"step": at, "epoch": epoch, "minutes": now, "knn_top1": top1})
        when = f"epoch {epoch}, step {at}" if at else "random init (step 0)"
        bar.write(f"{when}: k-NN ({cfg.knn_k}-NN, msf) top-1 {top1:.2f}%")
        clock["monitor"] += time.perf_counter() - t
        window["t"] += time.perf_counter() - t  # nor in the images/s of the log window

    def check_bad_files() -> int:
        count = bad.count()
        if any_rank(count > cfg.max_bad_share * len(data)):
            raise MsfkitError(
                f"{count} of {len(data)} training images are unreadable, more than max_bad_share="
                f"{cfg.max_bad_share}: see {bad.path}"
            )
        if count > metrics.get("bad_files", 0):
            bar.write(f"skipped {count} unreadable training images so far (listed in {bad.path})")
        metrics["bad_files"] = count
        return count

    def on_step(at: int, out) -> bool:
        nonlocal stop
        if cfg.max_minutes and any_rank(bar.out_of_time()):
            stop = at  # out of time: end here as if max_steps said so (checkpoint, export)
        done["step"] = at
        window["loss"] += out.loss.item()
        window["purity"] += out.purity.item()
        window["n"] += 1
        if at % cfg.log_every == 0 or at == stop:
            seconds = time.perf_counter() - window["t"]
            row = {
                "step": at,
                "epoch": (at - 1) // steps_per_epoch + 1,
                "loss": window["loss"] / window["n"],
                "lr": float(lrs[at - 1]),
                "ema": float(momentums[at - 1]),
                "purity": window["purity"] / window["n"],
                "images_per_s": window["n"] * cfg.batch_size / seconds,
                "minutes": minutes(),
                "bad_files": check_bad_files(),
            }
            log.write(row)
            metrics.update(loss=row["loss"], purity=row["purity"], minutes=row["minutes"])
            bar.bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
            window.update(loss=0.0, purity=0.0, n=0, t=time.perf_counter())
        bar.bar.update(1)
        if monitor and cfg.knn_every_steps and at % cfg.knn_every_steps == 0 and at < stop:
            knn(at)
        if cfg.save_every_steps and at % cfg.save_every_steps == 0:
            save(at)
        return at >= stop

    if monitor and cfg.knn_at_start and step == 0:
        knn(0)  # the random-init baseline, on the monitor's own images and protocol
    done = {"step": step}
    try:
        while step < stop:
            epoch = step // steps_per_epoch
            bar.epoch(epoch)
            sampler.set_epoch(epoch, start=step % steps_per_epoch)
            views.set_epoch(epoch)
            try:
                step = train_one_epoch(
                    ddp,
                    loader,
                    optimizer,
                    lrs=lrs,
                    momentums=momentums,
                    step=step,
                    device=device,
                    cfg=cfg,
                    on_step=on_step,
                )
            except NonFiniteLoss as e:
                if last_saved:
                    kept = f"the last good checkpoint is {ckpt_path} (step {last_saved})"
                    advice = f"{kept}; lower lr, then --resume"
                else:
                    advice = "no checkpoint was written yet; lower lr and start again"
                raise NonFiniteLoss(f"{e}: training stopped; {advice}") from None
            epoch_done = step % steps_per_epoch == 0
            if monitor and ((epoch_done and (epoch + 1) % cfg.knn_every == 0) or step == stop):
                knn(step)
            if (epoch_done and (epoch + 1) % cfg.save_every == 0) or step == stop:
                save(step)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (progress.Terminated)
        bar.close()
        bar.interrupted(done["step"], last_saved, how_it_ended(e))
        raise
    finally:
        bar.close()
        log.close()
    d.barrier()
    if not d.is_main:
        return None
    folder = export_model(
        model, cfg, run / "model", step=step, steps_per_epoch=steps_per_epoch, metrics=metrics
    )
    bar.stopped(step)
    return folder


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    return autocast_bf16(cfg.precision, device)
