"""The two views of MSF made on the training device, for a whole batch, with per-sample random parameters.

Loader workers only decode: `UInt8Batches` serves uint8 batches (B, C, S, S) with each image's size
before resizing (named datasets are in-memory arrays: a batch is one gather, no workers needed).
`make_views` then draws, per sample and from one generator, the parameters of docs/method.md
"Augmentations" and applies them to the batch in plain torch:

    weak:   RandomResizedCrop(scale 0.2-1, ratio 3/4-4/3), horizontal flip p=0.5, Normalize
    strong: weak + ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8 + RandomGrayscale p=0.2
            + GaussianBlur(sigma 0.1-2.0 x size/224) p=0.5 [+ solarize p, where a ViewSpec sets it]

The crop box follows `RandomResizedCrop.get_params` (10 attempts, then the centre crop) in the
image's own size, so squashing a file to S x S in the worker changes the resolution, not the box.
Colour jitter applies its four operations in a random order per sample, as torchvision does per
call, each with torchvision's tensor semantics (hue through RGB <-> HSV). Flip commutes with the
colour ops and the symmetric blur, so it is folded into the crop's affine grid.

The generator is seeded from (seed, epoch, batch number): a resumed run draws exactly what an
uninterrupted one did. Parameters are drawn for the GLOBAL batch, on the CPU, and each process
takes its rows: the views do not depend on the number of processes or on the device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msfkit.models.config import IMAGENET_MEAN, IMAGENET_STD

GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
ATTEMPTS = 10  # RandomResizedCrop.get_params tries 10 boxes before the centre crop


@dataclass(frozen=True)
class ViewSpec:
    """One view's recipe; probabilities are per sample."""

    colour: bool = False  # ColorJitter, RandomGrayscale and GaussianBlur (the strong view)
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, sat., hue
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_blur: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)  # at 224 px; scaled by image_size / 224
    p_solarize: float = 0.0  # BYOL's second view has 0.2; no recipe of MSF has it


SPECS = {"weak": ViewSpec(), "strong": ViewSpec(colour=True)}


@dataclass
class ViewParams:
    """Per-sample parameters of one view of n samples (CPU tensors, float64 boxes)."""

    box: torch.Tensor  # (n, 4) top, left, height, width in pixels of the image's own size
    flip: torch.Tensor  # (n,) bool
    jitter: torch.Tensor  # (n,) bool: ColorJitter applied
    factors: torch.Tensor  # (n, 4) brightness, contrast, saturation factors and hue shift
    order: torch.Tensor  # (n, 4) a permutation of 0..3 (the op indices above), per sample
    gray: torch.Tensor  # (n,) bool
    blur: torch.Tensor  # (n,) bool
    sigma: torch.Tensor  # (n,) blur sigma in output pixels
    solarize: torch.Tensor  # (n,) bool


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The generator of batch `batch` of `epoch`: a function of (seed, epoch, batch) only."""
    words = np.random.SeedSequence([seed, epoch, batch]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(words[0]) << 31) ^ int(words[1]))


def draw_params(
    spec: ViewSpec, sizes: torch.Tensor, generator: torch.Generator, *, image_size: int, rows=None
) -> ViewParams:
    """Parameters for images of `sizes` (n, 2) = (height, width); `rows` = (offset, total) draws
    for `total` samples and keeps rows offset.. (this process's part of a global batch)."""
    n = len(sizes)
    offset, total = rows or (0, n)
    g = generator

    def u(*shape):
        return torch.rand(total, *shape, generator=g, dtype=torch.float64)[offset : offset + n]

    u_area, u_ratio, u_pos = u(ATTEMPTS), u(ATTEMPTS), u(2)
    flip, jitter, gray, blur, solar = (u() for _ in range(5))
    u_factors, u_sigma = u(4), u()
    order = torch.rand(total, 4, generator=g).argsort(1)[offset : offset + n]

    h_img, w_img = sizes[:, :1].double(), sizes[:, 1:].double()
    area = h_img * w_img * (spec.scale[0] + (spec.scale[1] - spec.scale[0]) * u_area)
    lo, hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u_ratio)
    w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    ok = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    pick = ok.double().argmax(1, keepdim=True)  # the first attempt that fits
    w, h = w.gather(1, pick), h.gather(1, pick)
    # none fits: the centre crop of the whole image, its ratio clamped into the range
    in_ratio = w_img / h_img
    cw = torch.where(in_ratio > spec.ratio[1], torch.round(h_img * spec.ratio[1]), w_img)
    ch = torch.where(in_ratio < spec.ratio[0], torch.round(w_img / spec.ratio[0]), h_img)
    found = ok.any(1, keepdim=True)
    w, h = torch.where(found, w, cw), torch.where(found, h, ch)
    top = torch.where(found, torch.floor(u_pos[:, :1] * (h_img - h + 1)), torch.floor((h_img - h) / 2))
    left = torch.where(found, torch.floor(u_pos[:, 1:] * (w_img - w + 1)), torch.floor((w_img - w) / 2))

    j = torch.tensor(spec.jitter, dtype=torch.float64)
    low = torch.cat([1 - j[:3], -j[3:]])
    factors = (low + (torch.cat([1 + j[:3], j[3:]]) - low) * u_factors).float()
    scale = image_size / 224
    sigma = (spec.sigma[0] + (spec.sigma[1] - spec.sigma[0]) * u_sigma).float() * scale
    colour = spec.colour
    return ViewParams(
        box=torch.cat([top, left, h, w], 1),
        flip=flip < spec.flip,
        jitter=(jitter < spec.p_jitter) & colour,
        factors=factors,
        order=order,
        gray=(gray < spec.p_gray) & colour,
        blur=(blur < spec.p_blur) & colour,
        sigma=sigma,
        solarize=solar < spec.p_solarize,
    )


def resized_crop(x: torch.Tensor, sizes: torch.Tensor, p: ViewParams, out: int) -> torch.Tensor:
    """Crop each image of x (B, C, S, S float) to its box and resize it to out x out, bilinear.

    `grid_sample` with a per-sample affine grid, not `torchvision.ops.roi_align`: both sample the
    same bilinear points (align_corners=False = roi_align(aligned=True, sampling_ratio=1)), but on
    CPU at 32 px, batch 256, grid_sample took 2.8 ms with 2 threads against roi_align's 3.5 ms
    (roi_align's CPU kernel uses one thread: 3.5 ms vs grid_sample's 4.1 ms at 1 thread), and the
    grid folds in the flip for free (a negative x scale) where roi_align needs one more pass.
    """
    box = p.box.to(torch.float64)
    hw = sizes.to(torch.float64)
    # a box [left, left + w] of an image of width W is x in [2 left / W - 1, 2 (left + w) / W - 1]
    sx, sy = box[:, 3] / hw[:, 1], box[:, 2] / hw[:, 0]
    tx, ty = (2 * box[:, 1] + box[:, 3]) / hw[:, 1] - 1, (2 * box[:, 0] + box[:, 2]) / hw[:, 0] - 1
    theta = torch.zeros(len(x), 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.where(p.flip, -sx, sx)
    theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = tx, sy, ty
    grid = F.affine_grid(theta.float().to(x.device), [len(x), x.shape[1], out, out], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of RGB x, torchvision's weights."""
    return (x * torch.tensor(GRAY, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    same = maxc == minc
    delta = maxc - minc
    s = delta / torch.where(same, torch.ones_like(maxc), maxc)
    d = torch.where(same, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    return torch.stack([torch.fmod(h / 6.0 + 1.0, 1.0), s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = (v * (1 - s)).clamp(0, 1), (v * (1 - s * f)).clamp(0, 1), (v * (1 - s * (1 - f))).clamp(0, 1)
    table = torch.stack([v, q, p, p, t, v, t, v, v, q, p, p, p, p, t, v, v, q], 1)  # r, g, b per sextant
    index = i.unsqueeze(1) + torch.arange(0, 18, 6, device=x.device).view(1, 3, 1, 1)
    return table.gather(1, index)


def colour_op(x: torch.Tensor, op: int, f: torch.Tensor) -> torch.Tensor:
    """ColorJitter's op (0 brightness, 1 contrast, 2 saturation, 3 hue) with per-sample factor f (B,)."""
    f = f.view(-1, 1, 1, 1)
    if op == 0:
        return (f * x).clamp(0, 1)
    if op == 1:
        mean = grayscale(x).mean((1, 2, 3), keepdim=True)
        return (f * x + (1 - f) * mean).clamp(0, 1)
    if op == 2:
        return (f * x + (1 - f) * grayscale(x)).clamp(0, 1)
    hsv = rgb_to_hsv(x)
    return hsv_to_rgb(torch.cat([torch.remainder(hsv[:, :1] + f, 1.0), hsv[:, 1:]], 1))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Per-sample separable Gaussian blur (torchvision's kernel and reflect padding), kernel `size`."""
    b, c, hgt, wid = x.shape
    half = size // 2
    t = torch.linspace(-half, half, size, device=x.device)
    k = torch.exp(-0.5 * (t / sigma.view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, size)
    y = F.pad(x.reshape(1, b * c, hgt, wid), (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, size, 1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, 1, size), groups=b * c)
    return y.view(b, c, hgt, wid)


def apply_view(x: torch.Tensor, sizes: torch.Tensor, p: ViewParams, *, image_size: int) -> torch.Tensor:
    """One view of a batch x (B, 3, S, S) in [0, 1]: crop + flip, colour, blur; not normalised."""
    dev = x.device
    y = resized_crop(x, sizes, p, image_size)
    factors = p.factors.to(dev)
    for slot in range(4 if p.jitter.any() else 0):  # each sample applies its ops in its own order
        for op in range(4):
            # the samples whose op at this slot is `op`: found on the CPU (no device sync), a quarter
            # of the batch each, so the 16 (slot, op) passes cost about one pass of each op
            ids = (p.jitter & (p.order[:, slot] == op)).nonzero().squeeze(1).to(dev)
            if len(ids):
                y[ids] = colour_op(y[ids], op, factors[ids, op])
    if p.gray.any():
        y = torch.where(p.gray.to(dev).view(-1, 1, 1, 1), grayscale(y).expand_as(y), y)
    if p.blur.any():
        size = 2 * math.ceil(3 * float(p.sigma.max())) + 1
        size = min(size, 2 * ((image_size - 1) // 2) + 1)  # reflect padding needs size // 2 < side
        blurred = gaussian_blur(y, p.sigma.to(dev), size)
        y = torch.where(p.blur.to(dev).view(-1, 1, 1, 1), blurred, y)
    if p.solarize.any():
        y = torch.where(p.solarize.to(dev).view(-1, 1, 1, 1) & (y >= 0.5), 1 - y, y)
    return y


def view_specs(*, crop_scale: float = 0.2, blur: float = 0.5) -> dict[str, ViewSpec]:
    """SPECS with the crop's smallest area share and the strong view's blur probability set."""
    return {k: dataclasses.replace(v, scale=(crop_scale, 1.0), p_blur=blur) for k, v in SPECS.items()}


def make_views(images: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator, *, kinds, **opts):
    """(target view, query view) of a uint8 batch (B, 1 or 3, S, S) on its device, normalised.

    `kinds` is ("weak", "strong") or the like; opts: image_size, rows (see `draw_params`), mean, std,
    specs (a dict like SPECS, from `view_specs`).
    """
    specs = opts.get("specs") or SPECS
    image_size = opts["image_size"]
    mean = torch.tensor(opts.get("mean", IMAGENET_MEAN), device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(opts.get("std", IMAGENET_STD), device=images.device).view(1, 3, 1, 1)
    x = images.float().div_(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    views = []
    for kind in kinds:
        p = draw_params(specs[kind], sizes, generator, image_size=image_size, rows=opts.get("rows"))
        views.append((apply_view(x, sizes, p, image_size=image_size) - mean) / std)
    return tuple(views)


class DeviceViews:
    """(target view, query view, labels) on `device`, over a DataLoader of `UInt8Batches` that follows
    `sampler` (an `EpochBatches`): batch b of epoch e draws from `batch_generator(seed, e, b)`."""

    def __init__(
        self, loader, sampler, *, augmentation: str, image_size: int, seed: int, device, specs=None
    ) -> None:
        self.loader, self.sampler, self.seed, self.device = loader, sampler, seed, torch.device(device)
        self.kinds, self.image_size, self.specs = tuple(augmentation.split("/")), image_size, specs

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: the epoch and first batch are the sampler's (`EpochBatches.set_epoch`)."""

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        s = self.sampler
        epoch, b, rows = s.epoch, s.start, (s.d.rank * s.local, s.global_batch)
        for images, sizes, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            g = batch_generator(self.seed, epoch, b)
            x_t, x_q = make_views(
                images, sizes, g, kinds=self.kinds, image_size=self.image_size, rows=rows, specs=self.specs
            )
            yield x_t, x_q, labels
            b += 1
