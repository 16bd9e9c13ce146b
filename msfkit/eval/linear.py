"""Linear evaluation of a frozen encoder: the MSF reference recipe and a fast variant on cached features.

The head is the reference's: L2-normalise -> fixed standardisation with the train set's
per-dimension mean and variance (of the normalised centre-crop features) -> Linear. The recipe
is SGD lr 0.01, momentum 0.9, weight decay 1e-4, batch 256, 40 epochs, lr x 0.1 at epochs 15
and 30 (at 3/8 and 3/4 of the epochs when fewer are asked for).

- preset "msf" (`train_linear_msf`): the backbone runs on every step, on RandomResizedCrop +
  flip views of the train images, exactly as the paper; hours on ImageNet.
- preset "fast" (`train_linear_fast`): the same head and recipe on cached centre-crop features
  (seconds). It may sweep several learning rates in one pass: every lr trains its own head on the
  same batches of 90 % of TRAIN, the best on the other 10 % of TRAIN wins and is retrained on all
  of it. The val set is never looked at. `evaluate_head(head, val_x, val_y)` scores a head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from msfkit.eval.labels import class_indices, holdout_split
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.models.preprocess import to_rgb
from msfkit.models.runtime import evaluating

PRESETS = ("fast", "msf")
FAST_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
HEAD_WEIGHTS, HEAD_CONFIG = "head.safetensors", "head.json"
_VAR_EPS = 1e-5  # added to the per-dimension variance before the square root


@dataclass
class LinearRecipe:
    """The reference linear-evaluation recipe (docs/method.md "Evaluation protocols")."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 256
    epochs: int = 40

    @property
    def milestones(self) -> list[int]:
        """Epochs after which the lr drops by 10x: 15 and 30 of 40, scaled for other lengths."""
        return [round(self.epochs * 15 / 40), round(self.epochs * 30 / 40)]


class LinearHead(nn.Module):
    """L2-normalise -> (x - mean) / sqrt(var + eps) with fixed train statistics -> Linear."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.linear = nn.Linear(len(mean), n_classes)
        self.classes: list[Any] = list(range(n_classes))
        self.info: dict[str, Any] = {}

    def standardize(self, feats: torch.Tensor) -> torch.Tensor:
        return (F.normalize(feats, dim=1) - self.mean) / self.std

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardize(feats))

    def save(self, directory: str | Path) -> Path:
        """Write head.safetensors (mean, std, weight, bias) and head.json (classes, recipe, scores);
        a write that fails leaves the old head as it was, both files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        config = {"classes": [str(c) for c in self.classes], **self.info}

        def write_config(tmp: Path) -> None:  # renamed into place once the weights were
            tmp.write_text(json.dumps(config, indent=2, default=str) + "\n")
            atomic_write(directory / HEAD_WEIGHTS, lambda weights: save_file(state, str(weights)))

        atomic_write(directory / HEAD_CONFIG, write_config)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> LinearHead:
        """A head written by `save` (safetensors, never pickle)."""
        directory = Path(directory)
        for name in (HEAD_WEIGHTS, HEAD_CONFIG):
            if not (directory / name).is_file():
                raise MsfkitError(f"{directory}: not a linear head folder (no {name})")
        state = load_file(str(directory / HEAD_WEIGHTS))
        config = json.loads((directory / HEAD_CONFIG).read_text())
        head = cls(state["mean"], state["std"], state["linear.weight"].shape[0])
        head.load_state_dict(state)
        head.classes = config.pop("classes")
        head.info = config
        return head


def standardization(train_feats) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per dimension of the L2-normalised train features (population variance + eps)."""
    x = F.normalize(_tensor(train_feats), dim=1).double()
    return x.mean(0).float(), (x.var(0, unbiased=False) + _VAR_EPS).sqrt().float()


def train_linear_fast(
    train_feats,
    train_labels,
    *,
    lrs: Sequence[float] = FAST_LRS,
    recipe: LinearRecipe | None = None,
    holdout: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> LinearHead:
    """The reference head trained on cached features; with several `lrs`, the one best on a
    held-out part of TRAIN is retrained on all of TRAIN. `head.info` records the sweep."""
    recipe = recipe or LinearRecipe()
    classes, y = class_indices(train_labels)
    x = _tensor(train_feats, device)
    _check_split(x, y)
    mean, std = standardization(x)
    z = (F.normalize(x, dim=1) - mean.to(x.device)) / std.to(x.device)
    yt = torch.as_tensor(y, device=x.device)
    lrs = sorted({float(lr) for lr in lrs})
    if not lrs or lrs[0] <= 0:
        raise MsfkitError(f"learning rates must be positive, got {lrs}")
    sweep: dict[float, float] = {}
    best_lr = lrs[0]
    if len(lrs) > 1:
        fit, held = holdout_split(y, holdout, seed)
        if len(held) == 0:
            raise MsfkitError("too few train items to hold some out for choosing the learning rate")
        fit_t, held_t = torch.as_tensor(fit, device=x.device), torch.as_tensor(held, device=x.device)
        weights = _fit_linear(z[fit_t], yt[fit_t], len(classes), lrs, recipe, seed)
        for lr, (w, b) in zip(lrs, weights, strict=True):
            sweep[lr] = float(((z[held_t] @ w.T + b).argmax(1) == yt[held_t]).float().mean() * 100)
        best_lr = max(lrs, key=lambda lr: sweep[lr])  # first (smallest) lr among equals
    ((w, b),) = _fit_linear(z, yt, len(classes), [best_lr], recipe, seed)
    head = LinearHead(mean, std, len(classes)).to(x.device)
    with torch.no_grad():
        head.linear.weight.copy_(w)
        head.linear.bias.copy_(b)
    head.classes = classes.tolist()
    head.info = {
        "preset": "fast",
        "recipe": asdict(recipe) | {"lr": best_lr},
        "lr_sweep": {str(lr): acc for lr, acc in sweep.items()},
        "holdout_fraction": holdout if len(lrs) > 1 else 0.0,
        "n_train": len(y),
    }
    return head


def _fit_linear(z, y, n_classes: int, lrs: Sequence[float], recipe: LinearRecipe, seed: int):
    """Train one Linear per lr, all on the same shuffled batches; [(weight, bias)] in lr order."""
    gen = torch.Generator().manual_seed(seed)
    n_heads, dim = len(lrs), z.shape[1]
    w = nn.Parameter(_init_weight(n_classes, dim, seed).to(z.device).expand(n_heads, -1, -1).clone())
    b = nn.Parameter(torch.zeros(n_heads, 1, n_classes, device=z.device))
    # SGD is element-wise, so one lr per head is a per-head scale of the update: apply it with
    # lr 1 on (w, b) and fold each head's lr into its gradient, momentum and weight decay alike.
    lr_scale = torch.tensor(lrs, device=z.device).view(-1, 1, 1)
    opt = torch.optim.SGD([w, b], lr=1.0, momentum=recipe.momentum)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, recipe.milestones, gamma=0.1)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(z), generator=gen).to(z.device)
        for start in range(0, len(z), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            logits = torch.einsum("bd,hcd->hbc", z[idx], w) + b
            # Sum over heads of each head's mean loss: every head gets exactly its own gradient.
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].repeat(n_heads), reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                w.grad.add_(w, alpha=recipe.weight_decay).mul_(lr_scale)
                b.grad.add_(b, alpha=recipe.weight_decay).mul_(lr_scale)
            opt.step()
        sched.step()
    return [(w[i].detach(), b[i].detach().reshape(-1)) for i in range(n_heads)]


def train_linear_msf(
    encoder: nn.Module,
    train_dataset,
    mean: torch.Tensor,
    std: torch.Tensor,
    classes: Sequence[Any],
    *,
    recipe: LinearRecipe | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    workers: int = 0,
    progress: bool = False,
) -> LinearHead:
    """The reference recipe: the frozen backbone (eval mode) runs on every augmented train batch.

    `train_dataset` yields (augmented image tensor, class index) — see `train_transform`; `mean`
    and `std` come from `standardization` of the centre-crop train features. Deterministic for a
    seed: the weight starts from `_init_weight(seed)` (bias 0), the shuffle has its own generator
    seeded with `seed`, and the global torch RNG (augmentations) is seeded right before the first
    batch.
    """
    recipe = recipe or LinearRecipe()
    device = torch.device(device)
    if len(train_dataset) == 0:
        raise MsfkitError("the train split is empty")
    head = LinearHead(mean, std, len(classes))
    with torch.no_grad():
        head.linear.weight.copy_(_init_weight(len(classes), len(mean), seed))
        head.linear.bias.zero_()
    head.to(device)
    loader = DataLoader(
        train_dataset,
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    opt = torch.optim.SGD(
        head.linear.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, recipe.milestones, gamma=0.1)
    torch.manual_seed(seed)  # the augmentations draw from the global generator
    with evaluating(encoder, torch.device(device)):
        for _ in tqdm(
            range(recipe.epochs), desc="linear (msf)", unit="epoch", disable=not progress, leave=False
        ):
            for x, y in loader:
                with torch.no_grad():
                    feats = encoder.embed_batch(x.to(device, non_blocking=True), precision)
                loss = F.cross_entropy(head(feats), y.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    head.classes = list(classes)
    head.info = {"preset": "msf", "recipe": asdict(recipe), "n_train": len(train_dataset)}
    return head


def train_transform(config):
    """RandomResizedCrop(image_size) + horizontal flip + normalise: the reference's train views."""
    # torchvision, for the full recipe's augmentation alone: it imports torch._dynamo (seconds on two
    # cores), which every other eval (k-NN, the fast probe, a saved head) never needs
    from torchvision import transforms as T  # loads torch

    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.RandomResizedCrop(config.image_size, interpolation=T.InterpolationMode(config.interpolation)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(config.mean, config.std),
        ]
    )


@torch.no_grad()
def evaluate_head(head: LinearHead, feats, labels) -> tuple[float, float, np.ndarray]:
    """(top-1 %, top-5 %, predicted labels) of the head on features with labels of its classes."""
    classes = np.asarray(head.classes)
    _, y = class_indices(labels, classes)
    x = _tensor(feats, head.mean.device)
    if len(x) == 0:
        raise MsfkitError("the val split is empty")
    head.eval()
    logits = torch.cat([head(x[i : i + 65536]) for i in range(0, len(x), 65536)])
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu().numpy()
    top1 = float((top[:, 0] == y).mean() * 100)
    top5 = float((top == y[:, None]).any(1).mean() * 100)
    return top1, top5, classes[top[:, 0]]


def _init_weight(n_classes: int, dim: int, seed: int) -> torch.Tensor:
    """N(0, 0.01) weights from a generator of their own, so the init never depends on other RNG use."""
    return torch.randn(n_classes, dim, generator=torch.Generator().manual_seed(seed)) * 0.01


def _tensor(x, device="cpu") -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=torch.float32)


def _check_split(x: torch.Tensor, y: np.ndarray) -> None:
    if len(x) == 0:
        raise MsfkitError("the train split is empty")
    if len(x) != len(y):
        raise MsfkitError(f"{len(x)} train features but {len(y)} labels")
