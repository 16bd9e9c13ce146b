"""Views made on the device (training.views): the distributions of docs/method.md "Augmentations",
per sample, reproducible from (seed, epoch, batch), and pixel-exact where the parameters say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from msfkit.cli.main import cli
from msfkit.models.config import IMAGENET_MEAN, IMAGENET_STD
from msfkit.runtime import Ranks
from msfkit.training.batches import EpochBatches
from msfkit.training.checkpoint import load_checkpoint
from msfkit.training.data import UInt8Batches, as_batch, first, open_dataset
from msfkit.training.views import (
    SPECS,
    DeviceViews,
    ViewParams,
    ViewSpec,
    apply_view,
    batch_generator,
    colour_op,
    draw_params,
    gaussian_blur,
    make_views,
    resized_crop,
    view_specs,
)

N = 20_000


def _sizes(n: int, h: int, w: int) -> torch.Tensor:
    return torch.tensor([[h, w]]).expand(n, 2)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


@pytest.mark.parametrize(("h", "w"), [(28, 28), (40, 60), (20, 200)])  # 20 x 200: often the centre crop
@pytest.mark.slow
def test_crop_area_ratio_and_position_follow_random_resized_crops(h, w):
    p = draw_params(SPECS["weak"], _sizes(N, h, w), batch_generator(1, 2, 3), image_size=32)
    top, left, ch, cw = p.box.numpy().T
    assert (ch >= 1).all() and (cw >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + ch <= h).all() and (left + cw <= w).all()
    assert (p.box == p.box.round()).all()  # whole pixels, as get_params
    torch.manual_seed(0)
    image = torch.zeros(1, h, w)
    ref = np.array([RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(8000)])
    r_top, r_left, r_h, r_w = ref.T.astype(float)
    area, r_area = ch * cw / (h * w), r_h * r_w / (h * w)
    assert _ks(area, r_area) < 0.035
    assert _ks(np.log(cw / ch), np.log(r_w / r_h)) < 0.035
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert np.quantile(area, q) == pytest.approx(np.quantile(r_area, q), abs=0.03)
    # position: uniform over the places the box fits (where it has room to move at all)
    for at, r_at, free, r_free in ((top, r_top, h - ch, h - r_h), (left, r_left, w - cw, w - r_w)):
        assert ((free > 0).mean()) == pytest.approx((r_free > 0).mean(), abs=0.03)
        if (free > 0).sum() > 1000:
            mine, ref = at[free > 0] / free[free > 0], r_at[r_free > 0] / r_free[r_free > 0]
            assert mine.mean() == pytest.approx(ref.mean(), abs=0.02)
            assert _ks(mine, ref) < 0.05


def test_each_probability_on_20k_draws():
    strong = draw_params(SPECS["strong"], _sizes(N, 32, 32), batch_generator(0, 0, 0), image_size=32)
    tol = 4 * np.sqrt(0.25 / N)
    for name, want in (("flip", 0.5), ("jitter", 0.8), ("gray", 0.2), ("blur", 0.5)):
        assert getattr(strong, name).double().mean().item() == pytest.approx(want, abs=tol), name
    assert not strong.solarize.any()
    weak = draw_params(SPECS["weak"], _sizes(N, 32, 32), batch_generator(0, 0, 1), image_size=32)
    assert weak.flip.double().mean().item() == pytest.approx(0.5, abs=tol)
    assert not (weak.jitter.any() or weak.gray.any() or weak.blur.any() or weak.solarize.any())
    solar = draw_params(
        ViewSpec(colour=True, p_solarize=0.2), _sizes(N, 8, 8), batch_generator(0, 0, 2), image_size=8
    )
    assert solar.solarize.double().mean().item() == pytest.approx(0.2, abs=tol)
    # independent draws: jitter and grayscale together about 0.8 x 0.2 of the time
    both = (strong.jitter & strong.gray).double().mean().item()
    assert both == pytest.approx(0.16, abs=tol)


def test_the_recipe_knobs_turn_blur_off_and_set_the_smallest_crop():
    specs = view_specs(crop_scale=0.5, blur=0.0)
    strong = draw_params(specs["strong"], _sizes(N, 28, 28), batch_generator(0, 0, 0), image_size=32)
    assert not strong.blur.any() and strong.jitter.any() and strong.gray.any()
    area = (strong.box[:, 2] * strong.box[:, 3]) / (28 * 28)
    assert area.min().item() >= 0.5 - 2 * 28 / 784 and area.max().item() <= 1.0  # rounding: a px row
    default = draw_params(SPECS["strong"], _sizes(N, 28, 28), batch_generator(0, 0, 0), image_size=32)
    assert (default.box[:, 2] * default.box[:, 3] / 784).min().item() < 0.3  # 0.2 by default
    # the same generator draws the same boxes' randomness: only the knobs differ
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    a = make_views(x, _sizes(8, 28, 28), batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=32)
    b = make_views(
        x, _sizes(8, 28, 28), batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=32, specs=SPECS
    )
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_jitter_factors_sigma_and_op_order_ranges():
    p = draw_params(SPECS["strong"], _sizes(N, 32, 32), batch_generator(5, 0, 0), image_size=32)
    f = p.factors
    for col, (lo, hi) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)]):
        assert lo <= f[:, col].min() < lo + 0.01 and hi - 0.01 < f[:, col].max() <= hi
        assert f[:, col].mean().item() == pytest.approx((lo + hi) / 2, abs=0.01)
    lo, hi = 0.1 * 32 / 224, 2.0 * 32 / 224
    assert lo <= p.sigma.min() < lo + 0.01 and hi - 0.01 < p.sigma.max() <= hi
    assert (p.order.sort(1).values == torch.arange(4)).all()  # a permutation per sample
    first = torch.bincount(p.order[:, 0], minlength=4).double() / N
    assert torch.allclose(first, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)


def test_colour_ops_and_blur_match_torchvision_for_the_same_factor():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for op, (fn, factor) in enumerate(zip(fns, (1.3, 0.7, 1.35, -0.08), strict=True)):
        mine = colour_op(x.clone(), op, torch.full((4,), factor))
        ref = torch.stack([fn(xi, factor) for xi in x])
        assert torch.allclose(mine, ref, atol=1e-5), op
    sigma = torch.tensor([0.3, 0.8, 1.5, 2.0])
    ref = torch.stack([TF.gaussian_blur(xi, [7, 7], [float(s)] * 2) for xi, s in zip(x, sigma, strict=True)])
    assert torch.allclose(gaussian_blur(x, sigma, 7), ref, atol=1e-5)


def _batch(n=8, size=28):
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), _sizes(n, size, size)


def test_samples_of_one_batch_get_different_crops_and_views():
    images, sizes = _batch()
    images[:] = images[0]  # one image, eight times
    p = draw_params(SPECS["strong"], sizes, batch_generator(0, 0, 0), image_size=32)
    assert len({tuple(b.tolist()) for b in p.box}) == 8
    weak, strong = make_views(
        images, sizes, batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=32
    )
    for v in (weak, strong):
        assert v.shape == (8, 3, 32, 32) and v.dtype == torch.float32
        assert all(not torch.equal(v[0], v[i]) for i in range(1, 8))


def test_same_seed_epoch_and_batch_give_the_same_views_and_any_other_differs():
    images, sizes = _batch()

    def views(seed, epoch, batch):
        return make_views(
            images, sizes, batch_generator(seed, epoch, batch), kinds=("weak", "strong"), image_size=32
        )

    a = views(0, 1, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, views(0, 1, 2), strict=True))
    for other in ((0, 2, 2), (0, 1, 3), (1, 1, 2), (0, 2, 1)):
        assert not any(torch.equal(x, y) for x, y in zip(a, views(*other), strict=True)), other


def test_a_process_gets_its_rows_of_the_global_batch():
    images, sizes = _batch()
    whole = make_views(images, sizes, batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=32)
    part = make_views(
        images[4:], sizes[4:], batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=32, rows=(4, 8)
    )
    assert all(torch.equal(w[4:], p) for w, p in zip(whole, part, strict=True))


def _params(box, flip, n=1):
    off = torch.zeros(n, dtype=torch.bool)
    return ViewParams(
        box=torch.tensor(box, dtype=torch.float64), flip=torch.tensor(flip), jitter=off,
        factors=torch.ones(n, 4), order=torch.arange(4).repeat(n, 1), gray=off, blur=off,
        sigma=torch.ones(n), solarize=off,
    )  # fmt: skip


def test_a_crop_of_a_gradient_lands_where_the_box_says():
    # x = (column + 0.5) / W, y = (row + 0.5) / H: bilinear sampling of a linear ramp is exact
    h, w, out = 48, 64, 16
    ramp = torch.zeros(2, 3, h, w)
    ramp[:, 0] = (torch.arange(w) + 0.5) / w
    ramp[:, 1] = ((torch.arange(h) + 0.5) / h)[:, None]
    box = [[5.0, 9.0, 30.0, 40.0], [11.0, 3.0, 24.0, 52.0]]  # top, left, height, width
    y = resized_crop(ramp, _sizes(2, h, w), _params(box, [False, True], 2), out)
    centres = (torch.arange(out) + 0.5) / out
    for k, (top, left, bh, bw) in enumerate(box):
        xs, ys = (left + centres * bw) / w, (top + centres * bh) / h
        xs = xs.flip(0) if k == 1 else xs
        assert torch.allclose(y[k, 0], xs.expand(out, out), atol=1e-5)
        assert torch.allclose(y[k, 1], ys[:, None].expand(out, out), atol=1e-5)
    # and torchvision's resized_crop agrees away from the box's edge (it clamps at the box, we at the image)
    ref = TF.resized_crop(ramp[0], 5, 9, 30, 40, [out, out], antialias=False)
    assert torch.allclose(y[0, :, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5)
    # an image squashed to another size: the same box of its ORIGINAL size lands on the same content
    squashed = torch.nn.functional.interpolate(ramp[:1], size=(32, 32), mode="bilinear", align_corners=False)
    z = resized_crop(squashed, _sizes(1, h, w), _params(box[:1], [False]), out)
    assert torch.allclose(z[0, :2, 2:-2, 2:-2], y[0, :2, 2:-2, 2:-2], atol=1e-5)


@pytest.mark.slow
def test_weak_view_keeps_colours_and_strong_view_changes_them():
    n = 2000
    colours = torch.randint(
        20, 236, (n, 3, 1, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    images, sizes = colours.expand(n, 3, 8, 8).contiguous(), _sizes(n, 8, 8)
    weak, strong = make_views(images, sizes, batch_generator(0, 0, 0), kinds=("weak", "strong"), image_size=8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    original = colours.float() / 255
    weak, strong = weak * std + mean, strong * std + mean
    assert torch.allclose(weak, original.expand_as(weak), atol=1e-5)  # crop, flip: the same colour
    changed = (strong - original).abs().amax((1, 2, 3)) > 2e-3
    assert changed.double().mean().item() == pytest.approx(1 - 0.2 * 0.8, abs=0.04)  # jitter or grey
    g = batch_generator(0, 0, 0)  # the same draws as make_views: the weak view's, then the strong's
    draw_params(SPECS["weak"], sizes, g, image_size=8)
    p = draw_params(SPECS["strong"], sizes, g, image_size=8)
    touched = p.jitter | p.gray
    assert not changed[~touched].any()  # the blur of a flat colour is the colour
    assert (changed != touched).double().mean().item() < 0.01  # a factor near 1 may change little


def test_grey_samples_are_grey_and_solarize_inverts_bright_pixels():
    images, sizes = _batch(64)
    x = images.float() / 255
    p = draw_params(SPECS["strong"], sizes, batch_generator(0, 0, 0), image_size=32)
    y = apply_view(x, sizes, p, image_size=32)
    grey = y[p.gray]
    assert p.gray.any() and torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert not torch.allclose(y[~p.gray][:, 0], y[~p.gray][:, 1])
    q = dataclasses.replace(
        _params([[0.0, 0.0, 28.0, 28.0]] * 64, [False] * 64, 64), solarize=torch.ones(64, dtype=torch.bool)
    )
    plain = dataclasses.replace(q, solarize=torch.zeros(64, dtype=torch.bool))
    a, b = apply_view(x, sizes, q, image_size=32), apply_view(x, sizes, plain, image_size=32)
    assert torch.equal(a, torch.where(b >= 0.5, 1 - b, b))


def test_device_views_come_in_the_sampler_order_with_each_batch_seeded_by_epoch_and_number():
    data = first(open_dataset("fashion-mnist"), 64)
    images = UInt8Batches(data, source_size=37)
    assert images.in_memory
    sampler = EpochBatches(64, 16, Ranks(), seed=7)
    loader = DataLoader(images, batch_sampler=sampler, collate_fn=as_batch)
    views = DeviceViews(loader, sampler, augmentation="weak/strong", image_size=32, seed=7, device="cpu")
    sampler.set_epoch(1, start=2)
    got = list(views)
    order = list(sampler)
    assert len(got) == len(order) == 2
    raw = np.asarray(data.dataset.images)
    for b, ((x_t, x_q, labels), idx) in enumerate(zip(got, order, strict=True), start=2):
        assert labels.tolist() == data.labels[idx].tolist()  # the sampler's images, in its order
        batch = torch.from_numpy(raw[idx]).unsqueeze(1)
        g = batch_generator(7, 1, b)  # batch b of epoch 1
        want = make_views(batch, _sizes(16, 28, 28), g, kinds=("weak", "strong"), image_size=32)
        assert torch.equal(x_t, want[0]) and torch.equal(x_q, want[1])


RUN = [
    "data=fashion-mnist", "limit=256", "arch=resnet18", "stem=imagenet", "image_size=32", "batch_size=64",
    "epochs=2", "k=2", "bank_size=100", "workers=0", "threads=1", "precision=fp32", "knn_every=0",
    "log_every=1",
]  # fmt: skip


@pytest.mark.slow
def test_a_run_with_device_views_resumes_bit_identically(tmp_path):
    # 4 steps per epoch: stop at step 3 (mid-epoch), resume to step 6 (across an epoch)
    runner = CliRunner()
    straight, split = tmp_path / "straight", tmp_path / "split"
    for args in (
        [*RUN, f"out={straight}", "max_steps=6"],
        [*RUN, f"out={split}", "max_steps=3"],
        ["--resume", f"out={split}", "max_steps=6"],
    ):
        r = runner.invoke(cli, ["train", *args, "-q"])
        assert r.exit_code == 0, r.output
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 6 and a["config"]["augment_on"] == "device"
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    r = runner.invoke(
        cli, ["train", *RUN, f"out={tmp_path / 'old'}", "max_steps=1", "augment_on=workers", "-q"]
    )
    assert r.exit_code == 0, r.output  # the PIL path is still there
