"""MSF pre-training: `train` sets a run up (`training.run`), loops over epochs and steps, and
exports the online backbone as a model folder at the end.

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
import signal
import threading
import time
from pathlib import Path

import torch

from msfkit.models.errors import MsfkitError
from msfkit.models.files import is_disk_full
from msfkit.models.runtime import resolve_device
from msfkit.runtime import Ranks
from msfkit.training.checkpoint import save_checkpoint
from msfkit.training.config import TrainConfig
from msfkit.training.distributed import all_finite, any_rank
from msfkit.training.export import export_model
from msfkit.training.progress import how_it_ended, terminate
from msfkit.training.run import Run, start_run


class NonFiniteLoss(MsfkitError):
    """The loss became NaN or infinite: the run stops and keeps its last good checkpoint."""


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path | None:
    """Train (or resume) the run `cfg.out`; returns its model folder (None on ranks other than 0)."""
    device = resolve_device(cfg.device)
    d = Ranks.from_env(device.type)
    threads = torch.get_num_threads()
    on_term = threading.current_thread() is threading.main_thread()  # handlers live in the main thread
    previous = signal.signal(signal.SIGTERM, terminate) if on_term else None
    try:
        return train_run(start_run(cfg, resume, progress, device, d))
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


def train_run(run: Run) -> Path | None:
    """The epochs of a run that `start_run` built, from its step to its stop; then the model folder."""
    cfg = run.cfg
    if run.monitor and cfg.knn_at_start and run.step == 0:
        score_knn(run, 0)  # the random-init baseline, on the monitor's own images and protocol
    try:
        while run.step < run.stop:
            epoch = run.step // run.steps_per_epoch
            run.bar.epoch(epoch)
            run.sampler.set_epoch(epoch, start=run.step % run.steps_per_epoch)
            run.views.set_epoch(epoch)
            try:
                train_one_epoch(run)
            except NonFiniteLoss as e:
                raise NonFiniteLoss(f"{e}: training stopped; {nan_advice(run)}") from None
            epoch_done = run.step % run.steps_per_epoch == 0
            if run.monitor and ((epoch_done and (epoch + 1) % cfg.knn_every == 0) or run.step == run.stop):
                score_knn(run, run.step)
            if (epoch_done and (epoch + 1) % cfg.save_every == 0) or run.step == run.stop:
                save(run)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (progress.Terminated)
        run.bar.close()
        run.bar.interrupted(run.step, run.last_saved, how_it_ended(e))
        raise
    finally:
        run.bar.close()
        run.log.close()
    run.d.barrier()
    if not run.d.is_main:
        return None
    folder = export_model(
        run.model,
        cfg,
        run.folder / "model",
        step=run.step,
        steps_per_epoch=run.steps_per_epoch,
        metrics=run.metrics,
    )
    run.bar.stopped(run.step)
    return folder


def train_one_epoch(run: Run) -> None:
    """The steps of the current epoch, from `run.step` on, until the epoch ends or the run stops."""
    cfg = run.cfg
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    run.ddp.train()
    for x_target, x_query, labels in run.loader:
        # one MSF step: the target's EMA, the bank's k nearest neighbours, the loss, SGD
        for group in run.optimizer.param_groups:
            group["lr"] = float(run.lrs[run.step])
        x_target = x_target.to(run.device, non_blocking=True, memory_format=memory_format)
        x_query = x_query.to(run.device, non_blocking=True, memory_format=memory_format)
        out = run.ddp(x_target, x_query, labels.to(run.device), float(run.momentums[run.step]), run.bf16)
        if not all_finite(out.loss):
            raise NonFiniteLoss(f"loss is {out.loss.item()} at step {run.step + 1}")
        run.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        run.optimizer.step()
        run.step += 1

        # what the run does after it: time box, metrics row, bar, monitor, checkpoint
        if cfg.max_minutes and any_rank(run.bar.out_of_time()):
            run.stop = run.step  # out of time: end here as if max_steps said so (checkpoint, export)
        run.window.add(out.loss.item(), out.purity.item())
        if run.step % cfg.log_every == 0 or run.step == run.stop:
            log_metrics(run)
        run.bar.bar.update(1)
        knn_due = cfg.knn_every_steps and run.step % cfg.knn_every_steps == 0 and run.step < run.stop
        if run.monitor and knn_due:
            score_knn(run, run.step)
        if cfg.save_every_steps and run.step % cfg.save_every_steps == 0:
            save(run)
        if run.step >= run.stop:
            break


def log_metrics(run: Run) -> None:
    """A metrics.csv (and TensorBoard) row of the steps since the last row; the bar's loss and img/s."""
    w, at = run.window, run.step
    row = {
        "step": at,
        "epoch": (at - 1) // run.steps_per_epoch + 1,
        "loss": w.loss / w.steps,
        "lr": float(run.lrs[at - 1]),
        "ema": float(run.momentums[at - 1]),
        "purity": w.purity / w.steps,
        "images_per_s": w.images_per_s(run.cfg.batch_size),
        "minutes": run.clock.minutes(),
        "bad_files": check_bad_files(run),
    }
    run.log.write(row)
    run.metrics.update(loss=row["loss"], purity=row["purity"], minutes=row["minutes"])
    run.bar.bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
    w.reset()


def check_bad_files(run: Run) -> int:
    """The bad-file guard: how many training images were unreadable so far (a line when that grew);
    the run stops on every rank when they are more than `max_bad_share` of its images."""
    count = run.bad.count()
    if any_rank(count > run.cfg.max_bad_share * run.images):
        raise MsfkitError(
            f"{count} of {run.images} training images are unreadable, more than max_bad_share="
            f"{run.cfg.max_bad_share}: see {run.bad.path}"
        )
    if count > run.metrics.get("bad_files", 0):
        run.bar.write(f"skipped {count} unreadable training images so far (listed in {run.bad.path})")
    run.metrics["bad_files"] = count
    return count


def score_knn(run: Run, at: int) -> None:
    """The k-NN monitor at step `at` (0: random init) into metrics, metrics.csv and one line; its
    time is left out of the training minutes and of the images/s."""
    if at and run.metrics.get("knn", {}).get("step") == at:
        return  # knn_every_steps already scored this step (an epoch's end)
    cfg, start, now = run.cfg, time.perf_counter(), run.clock.minutes()
    top1 = run.monitor(run.model)
    key = "knn" if at else "knn_random_init"
    run.metrics[key] = {"k": cfg.knn_k, "top1": top1, "step": at, **run.monitor.sizes}
    epoch = (at - 1) // run.steps_per_epoch + 1
    run.log.write({"step": at, "epoch": epoch, "minutes": now, "knn_top1": top1})
    when = f"epoch {epoch}, step {at}" if at else "random init (step 0)"
    run.bar.write(f"{when}: k-NN ({cfg.knn_k}-NN, msf) top-1 {top1:.2f}%")
    spent = time.perf_counter() - start
    run.clock.leave_out(spent)
    run.window.leave_out(spent)


def save(run: Run) -> None:
    """RUN/checkpoint.pt at `run.step`, written by rank 0 once every rank found the weights finite."""
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    if not all(torch.isfinite(p).all() for p in params):  # on every rank, so that all stop
        raise NonFiniteLoss(f"weights are not finite after step {run.step}")
    if run.d.is_main:
        state = {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "step": run.step,
            "epoch": math.ceil(run.step / run.steps_per_epoch),
            "steps_per_epoch": run.steps_per_epoch,
            "config": run.cfg.to_dict(),
            "metrics": run.metrics,
        }
        save_checkpoint(run.checkpoint, state)
    run.last_saved = run.step


def nan_advice(run: Run) -> str:
    """What to do after a non-finite loss: resume from the last good checkpoint, or start again."""
    if run.last_saved:
        return (
            f"the last good checkpoint is {run.checkpoint} (step {run.last_saved}); lower lr, then --resume"
        )
    return "no checkpoint was written yet; lower lr and start again"
