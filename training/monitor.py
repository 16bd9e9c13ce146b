"""What a run reports while it trains: metrics.csv + TensorBoard, and the k-NN monitor.

Rank 0 alone writes. The k-NN monitor embeds a labelled subset of the training data and of
`val_data` with the online backbone (centre-crop preprocessing, as the exported model folder
will use) and scores the val images with `msfkit.eval.knn` (msf protocol: unweighted vote).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from msfkit.eval.features import extract_features
from msfkit.eval.knn import knn_accuracy
from msfkit.models import Encoder
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.training.bad_files import skip_bad
from msfkit.training.config import TrainConfig
from msfkit.training.data import first, labels_of, open_dataset
from msfkit.training.export import encoder_config
from msfkit.training.msf import MSF

# minutes: training wall time, the monitor's own left out; bad_files: unreadable images skipped so far
METRICS = ("step", "epoch", "loss", "lr", "ema", "purity", "images_per_s", "minutes", "bad_files", "knn_top1")


def _write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class RunLog:
    """metrics.csv and TensorBoard scalars, written by rank 0 only; a resumed run drops rows past its step."""

    def __init__(self, run: Path, step: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        run.mkdir(parents=True, exist_ok=True)
        path = run / "metrics.csv"
        if path.exists() and step > 0:  # a resume: drop rows past the checkpoint, atomically
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            kept = [r for r in rows if int(r["step"]) <= step]
            # an older msfkit's header (other columns), even over no rows, is rewritten as this one
            if len(kept) != len(rows) or tuple(reader.fieldnames or ()) != METRICS:
                atomic_write(path, lambda tmp: _write_rows(tmp, kept))
        elif not path.exists() or step == 0:
            atomic_write(path, lambda tmp: _write_rows(tmp, []))
        self.file = path.open("a", newline="")  # appended to, never truncated: a kill loses nothing
        self.csv = csv.DictWriter(self.file, fieldnames=METRICS, extrasaction="ignore")
        self.tb = SummaryWriter(str(run / "tb"), purge_step=step + 1 if step else None)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        self.csv.writerow(row)
        self.file.flush()
        for key, value in row.items():
            if key not in ("step", "epoch") and value is not None and not math.isnan(value):
                self.tb.add_scalar(f"train/{key}", value, row["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tb.close()


class KnnMonitor:
    """k-NN top-1 (msf protocol) of the online backbone: train-set features vote for val images."""

    def __init__(self, cfg: TrainConfig, device: torch.device, bf16: bool) -> None:
        self.cfg, self.device, self.bf16 = cfg, device, bf16
        # untransformed: extract_features runs the encoder's own preprocessing (the one feature path)
        # a bad file is skipped here as in training (training.bad_files); val data records its own
        self.train = skip_bad(first(open_dataset(cfg.data), cfg.knn_train_limit), cfg.out)
        val = first(open_dataset(cfg.val_data, "test"), cfg.knn_val_limit)
        self.val = skip_bad(val, cfg.out, name="bad_val_files.csv")
        self.sizes = {"train_images": len(self.train), "val_images": len(self.val)}
        if (labels_of(self.train) < 0).any() or (labels_of(self.val) < 0).any():
            raise MsfkitError(
                "the k-NN monitor needs labels (class sub-folders in data and val_data); or set knn_every=0"
            )

    def __call__(self, model: MSF) -> float:
        encoder = Encoder(encoder_config(self.cfg), backbone=model.online.backbone)
        kw = dict(batch_size=256, device=self.device, precision="bf16" if self.bf16 else "fp32")
        train_x, train_y = extract_features(encoder, self.train, **kw)
        val_x, val_y = extract_features(encoder, self.val, **kw)
        acc = knn_accuracy(
            train_x, train_y, val_x, val_y, ks=(self.cfg.knn_k,), protocol="msf", device=self.device
        )
        return acc["top1"][self.cfg.knn_k]
