"""msfkit.models.resnet: torchvision's ResNets, bit for bit, without importing torchvision."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision

from msfkit.models.resnet import LAYERS, resnet, uninitialised


@pytest.mark.parametrize("arch", sorted(LAYERS))
def test_one_seed_gives_torchvisions_weights_and_outputs(arch):
    torch.manual_seed(3)
    ours = resnet(arch).eval()
    torch.manual_seed(3)
    theirs = getattr(torchvision.models, arch)(weights=None).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_torchvision_weights_load_strictly_and_give_its_outputs():
    theirs = torchvision.models.resnet18(weights=None)
    for m in theirs.modules():  # batch-norm statistics other than the defaults
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = resnet("resnet18")
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=0)


def test_uninitialised_allocates_every_tensor_and_draws_no_random_number():
    """Under `uninitialised()` a ResNet gets every tensor in torchvision's names, shapes and dtypes,
    and no initialisation runs: the random generator is where it was. After the block the seeded
    initialisation is torchvision's again."""
    torch.manual_seed(5)
    with uninitialised():
        empty = resnet("resnet18")
    drawn_after = torch.rand(4)
    torch.manual_seed(5)
    assert torch.equal(drawn_after, torch.rand(4))
    torch.manual_seed(5)
    ours = resnet("resnet18")
    torch.manual_seed(5)
    theirs = torchvision.models.resnet18(weights=None)
    a, b, c = empty.state_dict(), ours.state_dict(), theirs.state_dict()
    assert list(a) == list(c)
    assert [(t.shape, t.dtype) for t in a.values()] == [(t.shape, t.dtype) for t in c.values()]
    assert all(torch.equal(b[key], c[key]) for key in c)


def test_an_encoder_is_built_and_run_without_importing_torchvision():
    code = (
        "import sys, torch; from msfkit.models import Encoder, EncoderConfig; "
        "e = Encoder(EncoderConfig(arch='resnet18', image_size=32, resize=32)); "
        "from PIL import Image; x = e.embed([Image.new('RGB', (40, 30))]); "
        "print(x.shape, 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(1,", "512)", "False"]
