"""The batches a run trains on: a seeded per-epoch order (`EpochBatches`) and the loader of views.

`make_loader` gives (target view, query view, labels) batches made on the device from decoded
uint8 images (`training.views`, the default) or per image by PIL in loader workers
(`training.augment`). Files that cannot be read are skipped and recorded (`training.bad_files`).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler

from msfkit.runtime import Ranks
from msfkit.training.augment import TwoViews
from msfkit.training.config import TrainConfig
from msfkit.training.data import UInt8Batches, as_batch
from msfkit.training.views import DeviceViews, view_specs


class EpochBatches(Sampler):
    """This process's share of each global batch of a seeded per-epoch permutation (drop last)."""

    def __init__(self, n: int, global_batch: int, d: Ranks, seed: int) -> None:
        self.n, self.global_batch, self.d, self.seed = n, global_batch, d, seed
        self.local = global_batch // d.world
        self.steps_per_epoch = n // global_batch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Serve `epoch` from its batch number `start` on (a resumed run starts mid-epoch)."""
        self.epoch, self.start = epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        for b in range(self.start, self.steps_per_epoch):
            lo = b * self.global_batch + self.d.rank * self.local
            yield perm[lo : lo + self.local].tolist()

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start


def make_loader(cfg: TrainConfig, data, sampler: EpochBatches, device: torch.device):
    """(batches of (target view, query view, labels), the `set_epoch` owner, loader workers)."""
    pin = device.type == "cuda"
    if cfg.augment_on == "workers":  # each worker makes the views of its images with PIL
        view = dict(crop_scale=cfg.crop_scale, blur=cfg.blur)
        views = TwoViews(data, cfg.augmentation, cfg.image_size, cfg.seed, **view)
        loader = DataLoader(views, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=pin)
        return loader, views, cfg.workers
    # workers decode files only (a named dataset is an in-memory array); the views are made on the device
    images = UInt8Batches(data, source_size=math.ceil(cfg.image_size * 8 / 7))
    workers = 0 if images.in_memory else cfg.workers
    raw = DataLoader(images, batch_sampler=sampler, num_workers=workers, collate_fn=as_batch, pin_memory=pin)
    augment = dict(augmentation=cfg.augmentation, image_size=cfg.image_size, seed=cfg.seed)
    specs = view_specs(crop_scale=cfg.crop_scale, blur=cfg.blur)
    views = DeviceViews(raw, sampler, **augment, device=device, specs=specs)
    return views, views, workers
