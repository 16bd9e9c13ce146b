"""Linear evaluation on real Fashion-MNIST with a tiny real ResNet18: the `msf` preset against a
plain loop written here, the `fast` lr sweep (one pass, chosen on train only), label sampling,
and the saved head."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms as T

from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist
from msfkit.eval.features import extract_features
from msfkit.eval.labels import holdout_split, sample_per_class
from msfkit.eval.linear import (
    LinearHead,
    LinearRecipe,
    _fit_linear,
    evaluate_head,
    standardization,
    train_linear_fast,
    train_linear_msf,
    train_transform,
)
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import cpu_has_fast_bf16


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32)).eval()


@pytest.fixture(scope="module")
def fmnist():
    xi, yi = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    return xi[:400], yi[:400], xt[:150], yt[:150]


@pytest.fixture(scope="module")
def feats(encoder, fmnist):
    xi, yi, xt, yt = fmnist
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"  # bf16 only where it is native (fast)
    tx, ty = extract_features(encoder, ArrayImageDataset(xi, yi), precision=precision)
    vx, vy = extract_features(encoder, ArrayImageDataset(xt, yt), precision=precision)
    return tx, ty, vx, vy


@pytest.mark.slow
def test_msf_preset_matches_a_plain_loop(encoder, fmnist):
    """The reference recipe, written out by hand here, gives the same head and the same accuracy."""
    xi, yi, xt, yt = fmnist
    xi, yi = xi[:48], yi[:48]
    seed, recipe = 3, LinearRecipe(epochs=2, batch_size=16)
    centre, _ = extract_features(encoder, ArrayImageDataset(xi, yi))
    val_x, val_y = extract_features(encoder, ArrayImageDataset(xt[:100], yt[:100]))
    mean, std = standardization(centre)
    head = train_linear_msf(
        encoder, ArrayImageDataset(xi, yi, train_transform(encoder.config)), mean, std, list(range(10)),
        recipe=recipe, seed=seed,
    )  # fmt: skip

    # The plain loop: frozen backbone in eval mode, L2-normalise, standardise with train stats, Linear.
    aug = T.Compose(
        [
            T.Lambda(lambda im: im.convert("RGB")),
            T.RandomResizedCrop(32),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    c = torch.from_numpy(centre).double()
    mu, sd = c.mean(0).float(), (c.var(0, unbiased=False) + 1e-5).sqrt().float()
    linear = torch.nn.Linear(512, 10)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(10, 512, generator=torch.Generator().manual_seed(seed)) * 0.01)
        linear.bias.zero_()
    loader = torch.utils.data.DataLoader(
        ArrayImageDataset(xi, yi, aug),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD(linear.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], gamma=0.1)  # 15/40 and 30/40 of 2 epochs
    torch.manual_seed(seed)
    for _ in range(2):
        for x, y in loader:
            with torch.no_grad():
                f = F.normalize(encoder.backbone(x), dim=1)
            loss = F.cross_entropy(linear((f - mu) / sd), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()

    torch.testing.assert_close(head.linear.weight, linear.weight, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        plain = linear((F.normalize(torch.from_numpy(val_x), dim=1) - mu) / sd).argmax(1).numpy()
    top1, _, pred = evaluate_head(head, val_x, val_y)
    assert top1 == pytest.approx((plain == val_y).mean() * 100)
    np.testing.assert_array_equal(pred, plain)


@pytest.mark.slow
def test_lr_sweep_in_one_pass_equals_separate_runs(feats):
    tx, ty, _, _ = feats
    mean, std = standardization(tx)
    z = (F.normalize(torch.from_numpy(tx), dim=1) - mean) / std
    y = torch.from_numpy(ty)
    recipe = LinearRecipe(epochs=4)
    together = _fit_linear(z, y, 10, [0.01, 0.3], recipe, seed=0)
    for lr, (w, b) in zip([0.01, 0.3], together, strict=True):
        ((w1, b1),) = _fit_linear(z, y, 10, [lr], recipe, seed=0)
        torch.testing.assert_close(w, w1, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b, b1, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_fast_picks_its_lr_on_train_only(feats):
    tx, ty, vx, vy = feats
    head = train_linear_fast(tx, ty, lrs=(0.001, 0.03, 1.0), recipe=LinearRecipe(epochs=8))
    sweep = {float(k): v for k, v in head.info["lr_sweep"].items()}
    assert set(sweep) == {0.001, 0.03, 1.0}
    assert head.info["recipe"]["lr"] == max(sweep, key=sweep.get)
    fit, held = holdout_split(ty, 0.1, seed=0)
    # 10 % (rounded up) of every class of TRAIN, disjoint from the part the heads are fitted on
    assert len(held) == sum(int(np.ceil(0.1 * n)) for n in np.bincount(ty))
    assert not set(fit) & set(held) and len(fit) + len(held) == len(ty)
    # The val set cannot change the choice: the function never sees it; scores on it are reported only.
    top1, top5, pred = evaluate_head(head, vx, vy)
    assert top1 > 50 and top5 >= top1 and pred.shape == vy.shape


@pytest.mark.slow
def test_fast_with_one_lr_uses_all_of_train(feats):
    tx, ty, _, _ = feats
    head = train_linear_fast(tx, ty, lrs=(0.01,), recipe=LinearRecipe(epochs=2))
    assert head.info["lr_sweep"] == {} and head.info["holdout_fraction"] == 0.0
    assert head.info["n_train"] == len(ty)


def test_sample_per_class_is_deterministic_and_per_class():
    _, labels = load_fashion_mnist("train")
    picked = sample_per_class(labels, 0.01)
    np.testing.assert_array_equal(picked, sample_per_class(labels, 0.01))
    assert np.bincount(labels[picked]).tolist() == [60] * 10  # 6,000 images per class
    assert not np.array_equal(picked, sample_per_class(labels, 0.01, seed=1))
    assert len(sample_per_class(labels, 0.1)) == 6000
    with pytest.raises(MsfkitError, match="train fraction"):
        sample_per_class(labels, 0)


@pytest.mark.slow
def test_saved_head_predicts_the_same(feats, tmp_path):
    tx, ty, vx, vy = feats
    labels = np.array([f"class-{c}" for c in ty])
    head = train_linear_fast(tx, labels, lrs=(0.03,), recipe=LinearRecipe(epochs=2))
    head.save(tmp_path / "head")
    again = LinearHead.load(tmp_path / "head")
    val_labels = np.array([f"class-{c}" for c in vy])
    assert evaluate_head(again, vx, val_labels)[:2] == evaluate_head(head, vx, val_labels)[:2]
    assert again.classes == [f"class-{c}" for c in range(10)] and again.info["preset"] == "fast"


@pytest.mark.slow
def test_val_class_unknown_to_the_head_is_an_error(feats):
    tx, ty, vx, vy = feats
    head = train_linear_fast(tx[ty < 5], ty[ty < 5], lrs=(0.03,), recipe=LinearRecipe(epochs=1))
    with pytest.raises(MsfkitError, match="val has classes the train set lacks: 5, 6, 7, 8, 9"):
        evaluate_head(head, vx, vy)
    with pytest.raises(MsfkitError, match="train split is empty"):
        train_linear_fast(tx[:0], ty[:0])


SAVE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from msfkit.eval.linear import LinearHead
head = LinearHead(torch.ones(512), torch.full((512,), 2.0), 10)
head.info = {"notes": "x" * int(sys.argv[2])}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), mid-file
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
head.save(sys.argv[1])
"""


@pytest.mark.parametrize(
    ("notes", "limit"),
    [
        pytest.param(40_000, 30_000, id="head.json fails"),
        pytest.param(0, 12_000, id="head.safetensors fails"),
    ],
)  # the weights are 25 kB
@pytest.mark.slow
def test_a_save_that_fails_mid_write_leaves_the_old_head_whole(tmp_path, notes, limit):
    old = LinearHead(torch.zeros(512), torch.ones(512), 10)
    old.save(tmp_path / "head")
    before = {p.name: p.read_bytes() for p in (tmp_path / "head").iterdir()}
    args = [sys.executable, "-c", SAVE_UNDER_A_FILE_SIZE_LIMIT, tmp_path / "head", notes, limit]
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True)
    assert r.returncode == 1 and "too large" in r.stderr.lower(), r.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "head").iterdir()} == before  # no temp file left
    torch.testing.assert_close(LinearHead.load(tmp_path / "head").mean, old.mean)
