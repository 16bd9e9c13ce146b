"""The objects of one training run, built in order by `start_run`, and the state the loop moves on.

`start_run` is the set-up half of `msfkit.training.loop` (DINO's `main` before its epoch loop):
checks, data and loader, model and optimiser (a resume loads them from RUN/checkpoint.pt), the
schedules, the metrics log, the k-NN monitor, the progress bar and the clocks. The order is part
of the contract: the seed is set before anything draws from it, so a run and its resume agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import slow_bf16_warning, use_bf16
from msfkit.runtime import Ranks
from msfkit.training.bad_files import BAD_FILES_NAME, BadFiles, skip_bad
from msfkit.training.batches import EpochBatches, make_loader
from msfkit.training.checkpoint import CHECKPOINT_NAME, resume_run
from msfkit.training.config import TrainConfig
from msfkit.training.data import first, open_dataset
from msfkit.training.distributed import wrap_ddp
from msfkit.training.init import load_init, start_from
from msfkit.training.meters import Clock, Window
from msfkit.training.monitor import KnnMonitor, RunLog
from msfkit.training.msf import MSF
from msfkit.training.progress import Progress
from msfkit.training.schedules import schedules


@dataclass
class Run:
    """A run's parts and its moving state: `step` (optimiser steps done), `stop` (the step it ends
    at; a time box may bring it forward), `last_saved` (the checkpoint's step) and `metrics` (last
    logged values, saved in every checkpoint and in the model folder's provenance)."""

    cfg: TrainConfig
    d: Ranks
    device: torch.device
    folder: Path  # the run folder (cfg.out)
    images: int  # training images
    steps_per_epoch: int
    sampler: EpochBatches  # the seeded order: set_epoch(epoch, start=batch) before each epoch
    views: Any  # the loader's view maker: set_epoch(epoch) before each epoch
    loader: Any  # (target views, query views, labels) batches
    model: MSF  # what is saved and exported
    ddp: nn.Module  # `model`, in DDP under torchrun: what a step runs
    optimizer: torch.optim.Optimizer
    bf16: bool  # bf16 autocast (precision=auto: where the device computes it natively)
    lrs: np.ndarray  # per step
    momentums: np.ndarray  # the target's EMA momentum, per step
    bad: BadFiles  # RUN/bad_files.csv
    log: RunLog  # metrics.csv + TensorBoard (rank 0)
    monitor: KnnMonitor | None  # the k-NN monitor (rank 0, knn_every and val_data set)
    bar: Progress
    clock: Clock  # training minutes, continued over resumes
    window: Window  # loss, purity, images/s since the last metrics row
    step: int
    stop: int
    last_saved: int | None
    metrics: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT_NAME


def check_run(cfg: TrainConfig, resume: bool, device: torch.device, d: Ranks) -> None:
    """The refusals that need no data: a run folder in use, SyncBN without CUDA, an uneven split."""
    folder = Path(cfg.out)
    if not resume and (folder / CHECKPOINT_NAME).exists():
        raise MsfkitError(
            f"{folder} already holds a run: pass --resume to continue it, or choose another out="
        )
    if cfg.sync_bn and device.type != "cuda":
        raise MsfkitError("sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
    if cfg.batch_size % d.world:
        raise MsfkitError(f"batch_size={cfg.batch_size} does not split over {d.world} processes")


def start_run(cfg: TrainConfig, resume: bool, progress: bool, device: torch.device, d: Ranks) -> Run:
    """Build the run `cfg.out` (or load it back, `resume`), ready for its next step."""
    check_run(cfg, resume, device, d)
    cfg, init, note = load_init(cfg) if not resume else (cfg, None, "")  # a resume has it in its checkpoint
    torch.manual_seed(cfg.seed)
    folder = Path(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)  # bad_files.csv may be written by the first batch
    data = skip_bad(first(open_dataset(cfg.data), cfg.limit), folder)
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

    model = MSF(cfg.arch, cfg.stem, cfg.k, cfg.bank_size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [*model.online.parameters(), *model.predictor.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    step, metrics = 0, {}
    if init is not None:
        metrics["init"] = start_from(model, init)
    if resume:
        step, metrics = resume_run(folder / CHECKPOINT_NAME, model, optimizer, steps_per_epoch)
    if cfg.compile:
        for net in (model.online, model.target, model.predictor):
            net.compile()
    ddp = wrap_ddp(model, d, device, cfg.sync_bn)

    lrs, momentums = schedules(cfg, steps_per_epoch)
    log = RunLog(folder, step, d.is_main)
    bf16 = use_bf16(cfg.precision, device)
    monitor = KnnMonitor(cfg, device, bf16) if d.is_main and cfg.knn_every and cfg.val_data else None
    stop = min(total, cfg.max_steps) if cfg.max_steps else total
    bar = Progress(cfg, step=step, stop=stop, steps_per_epoch=steps_per_epoch, bar=progress, show=d.is_main)
    if resume:
        bar.resumed(step)
    for line in (note, slow_bf16_warning(cfg.precision, device)):
        if line:
            bar.write(line)
    return Run(
        cfg=cfg,
        d=d,
        device=device,
        folder=folder,
        images=len(data),
        steps_per_epoch=steps_per_epoch,
        sampler=sampler,
        views=views,
        loader=loader,
        model=model,
        ddp=ddp,
        optimizer=optimizer,
        bf16=bf16,
        lrs=lrs,
        momentums=momentums,
        bad=BadFiles(folder / BAD_FILES_NAME),
        log=log,
        monitor=monitor,
        bar=bar,
        clock=Clock(before=float(metrics.get("minutes", 0.0))),  # started after the set-up, as the bar
        window=Window(),
        step=step,
        stop=stop,
        last_saved=step if resume else None,
        metrics=metrics,
    )
