"""The two augmented views of MSF (docs/method.md, "Augmentations"), made per image by PIL in loader workers.

This is the `augment_on=workers` path; `training.views` makes the same views on the training device
for a whole batch at once (the default). Views are written target view / query view.

strong (MoCo v2): RandomResizedCrop(scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8,
                  RandomGrayscale p=0.2, GaussianBlur(sigma 0.1-2) p=0.5, flip, Normalize
weak:             RandomResizedCrop(scale 0.2-1), flip, Normalize

The blur's sigma range is MoCo v2's at 224 px; at other sizes it scales with the image
(x size/224), so a 32 px view is blurred as much as its 224 px original would be, not 7x more.

Every view is drawn from a generator seeded by (run seed, epoch, image index), so the data a step
sees depends on none of: the number of loader workers, the number of processes, or whether the
run was resumed in the middle of an epoch.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

from msfkit.models.config import IMAGENET_MEAN, IMAGENET_STD
from msfkit.models.preprocess import to_rgb


def view_transform(
    kind: str,
    image_size: int,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    *,
    crop_scale: float = 0.2,
    blur: float = 0.5,
) -> T.Compose:
    """The 'weak' or 'strong' view of docs/method.md at `image_size` px (crop area share from
    `crop_scale`, blur probability `blur`)."""
    crop = [T.Lambda(to_rgb), T.RandomResizedCrop(image_size, scale=(crop_scale, 1.0))]
    tail = [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
    if kind == "weak":
        return T.Compose(crop + tail)
    if kind != "strong":
        raise ValueError(f"view kind must be 'weak' or 'strong', not {kind!r}")
    colour = [
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if blur > 0:
        colour.append(T.RandomApply([GaussianBlur(0.1 * image_size / 224, 2.0 * image_size / 224)], p=blur))
    return T.Compose(crop + colour + tail)


class GaussianBlur:
    """MoCo v2's blur: Pillow's GaussianBlur with sigma drawn uniformly from [low, high].

    Pillow blurs a small image in microseconds; torchvision's tensor blur costs milliseconds.
    """

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, image: Image.Image) -> Image.Image:
        sigma = torch.empty(1).uniform_(self.low, self.high).item()
        return image.filter(ImageFilter.GaussianBlur(radius=sigma))


class TwoViews:
    """A dataset of (target view, query view, label) over a dataset of (PIL image, label)."""

    def __init__(self, dataset, augmentation: str, image_size: int, seed: int, **view) -> None:
        target_kind, query_kind = augmentation.split("/")
        self.dataset = dataset
        self.target_tf = view_transform(target_kind, image_size, **view)  # view: crop_scale, blur
        self.query_tf = view_transform(query_kind, image_size, **view)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating an epoch (the loader's workers copy the dataset when they start)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.dataset[index]
        # torchvision transforms draw from torch's global generator: seed it per sample, locally
        with torch.random.fork_rng(devices=[]):
            # (the CPU generator only: torch.manual_seed would also queue a CUDA seeding per sample)
            torch.default_generator.manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
            return self.target_tf(image), self.query_tf(image), label
