"""Encoder, model folders and preprocessing: real ResNets, real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import msfkit
from msfkit.models import (
    Encoder,
    EncoderConfig,
    MsfkitError,
    build_backbone,
    prediction_head,
    projection_head,
)
from msfkit.models.preprocess import to_rgb


@pytest.mark.slow
def test_save_then_load_gives_identical_embeddings(tiny_model_dir, photo_paths):
    images = [Image.open(p) for p in photo_paths[:4]]
    first = msfkit.load(str(tiny_model_dir))
    again = msfkit.load(str(tiny_model_dir))
    a, b = first.embed(images), again.embed(images)
    assert a.shape == (4, 512) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert first.fingerprint == again.fingerprint


@pytest.mark.slow
def test_round_trip_preserves_weights_and_config(tmp_path):
    torch.manual_seed(1)
    enc = Encoder(
        EncoderConfig(arch="resnet18", image_size=64, resize=72, provenance={"method": "msf", "k": 5})
    )
    enc.save_pretrained(tmp_path / "m")
    back = msfkit.load(str(tmp_path / "m"))
    assert back.config == enc.config
    x = torch.randn(3, 3, 64, 64)
    np.testing.assert_array_equal(enc.embed(x), back.embed(x))
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "README.md"}


@pytest.mark.slow
def test_embed_accepts_pil_images_and_tensor_batches_alike(tiny_model_dir, photo_paths):
    enc = msfkit.load(str(tiny_model_dir))
    images = [Image.open(p) for p in photo_paths[:3]]
    batch = torch.stack([enc.transform()(im) for im in images])
    np.testing.assert_allclose(enc.embed(images, batch_size=2), enc.embed(batch), atol=1e-6)
    assert enc.embed([]).shape == (0, 512)


@pytest.mark.slow
def test_embed_leaves_training_mode_and_grad_alone(tiny_model_dir):
    enc = msfkit.load(str(tiny_model_dir)).train()
    out = enc.embed(torch.randn(2, 3, 32, 32))
    assert enc.training and out.shape == (2, 512)


@pytest.mark.slow
def test_bf16_embeddings_stay_close_to_fp32(tiny_model_dir):
    enc = msfkit.load(str(tiny_model_dir))
    x = torch.randn(8, 3, 32, 32)
    cos = (enc.embed(x) * enc.embed(x, precision="bf16")).sum(1)
    assert cos.min() > 0.99


def test_a_loaded_model_equals_one_built_with_its_init_and_loaded_by_copy(tmp_path):
    """`from_pretrained` builds the backbone without the random init the weights replace and takes
    the file's tensors as read: every tensor, dtype and output is that of a normally built model
    given the same weights, and it trains as well (parameters that need grad). A float16 file loads
    into float32."""
    torch.manual_seed(2)
    enc = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    for m in enc.modules():  # batch-norm statistics other than the defaults
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    enc.save_pretrained(tmp_path / "m")
    loaded = Encoder.from_pretrained(tmp_path / "m")
    reference = Encoder(enc.config)
    reference.backbone.load_state_dict(load_file(str(tmp_path / "m" / "model.safetensors")))
    a, b = loaded.backbone.state_dict(), reference.backbone.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert all(p.requires_grad for p in loaded.parameters())
    x = torch.randn(1, 3, 16, 16)  # small: the outputs follow from the tensors compared above
    np.testing.assert_array_equal(loaded.embed(x), reference.eval().embed(x))

    half = {k: v.half() if v.is_floating_point() else v for k, v in enc.backbone.state_dict().items()}
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "config.json").write_text((tmp_path / "m" / "config.json").read_text())
    save_file(half, str(tmp_path / "h" / "model.safetensors"))
    widened = Encoder.from_pretrained(tmp_path / "h").backbone.state_dict()
    assert all(widened[k].dtype == b[k].dtype and torch.equal(widened[k], half[k].to(b[k].dtype)) for k in b)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_model_folder_with_wrong_tensors_is_refused_by_name(tiny_model_dir, tmp_path, change):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    state = load_file(str(tiny_model_dir / "model.safetensors"))
    if change == "missing":
        del state["layer4.1.bn2.running_var"]
        expected = "missing layer4.1.bn2.running_var"
    elif change == "extra":
        state["fc.weight"] = torch.zeros(10, 512)
        expected = "unexpected fc.weight"
    else:
        state["conv1.weight"] = torch.zeros(64, 3, 7, 7)
        expected = "wrong shape conv1.weight (64, 3, 7, 7) != (64, 3, 3, 3)"
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(MsfkitError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        msfkit.load(str(d))


def test_model_folder_of_another_format_version_is_refused(tiny_model_dir, tmp_path):
    d = tmp_path / "future"
    d.mkdir()
    cfg = json.loads((tiny_model_dir / "config.json").read_text()) | {"format_version": 99}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    with pytest.raises(MsfkitError, match="format_version 99"):
        msfkit.load(str(d))


def test_weights_file_that_is_not_safetensors_is_refused(tiny_model_dir, tmp_path):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (d / "model.safetensors").write_bytes(b"\x80\x04not safetensors at all")
    with pytest.raises(MsfkitError, match="not a readable safetensors file"):
        msfkit.load(str(d))


@pytest.mark.parametrize("name", ["no/such/thing/here", "./missing-folder", "just-a-word", "a@b"])
def test_unrecognised_model_names_say_which_forms_are_accepted(name):
    with pytest.raises(MsfkitError, match="expected a model folder, 'org/name' or 'org/name@revision'"):
        msfkit.load(name)


@pytest.mark.parametrize(("arch", "dims"), [("resnet18", (512, 1024, 128)), ("resnet50", (2048, 4096, 512))])
def test_heads_have_the_papers_dimensions(arch, dims):
    d, hidden, out = dims
    proj, pred = projection_head(d), prediction_head(d)
    assert [tuple(proj[i].weight.shape) for i in (0, 3)] == [(hidden, d), (out, hidden)]
    assert [tuple(pred[i].weight.shape) for i in (0, 3)] == [(hidden, out), (out, hidden)]
    assert isinstance(proj[1], torch.nn.BatchNorm1d) and len(proj) == 4


@pytest.mark.slow
def test_backbone_keys_are_torchvisions_without_fc():
    import torchvision

    ours = build_backbone("resnet50").state_dict()
    theirs = {k: v for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert build_backbone("resnet18")(torch.randn(2, 3, 64, 64)).shape == (2, 512)


@pytest.mark.parametrize(
    ("stem", "layer1_side"), [("imagenet", 8), ("cifar", 32), ("cifar-maxpool", 16), ("cifar-s2", 16)]
)
@pytest.mark.slow
def test_stems_set_layer1_resolution_and_save_in_the_model_folder(tmp_path, stem, layer1_side):
    net = build_backbone("resnet18", stem)
    seen = []
    net.layer1.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 512) and seen == [layer1_side]
    # the small-image stems share the cifar stem's conv1 shape; the model folder records which one
    assert tuple(net.conv1.weight.shape) == ((64, 3, 7, 7) if stem == "imagenet" else (64, 3, 3, 3))
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(arch="resnet18", stem=stem, image_size=32, resize=32))
    enc.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["stem"] == stem
    back = msfkit.load(str(tmp_path / "m"))
    x = torch.randn(2, 3, 32, 32)
    np.testing.assert_array_equal(enc.embed(x), back.embed(x))


def _rgb(img: Image.Image) -> np.ndarray:
    out = to_rgb(img)
    assert out.mode == "RGB"
    return np.asarray(out)


def test_to_rgb_flattens_transparency_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert (_rgb(rgba) == 255).all()
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30])
    pal.info["transparency"] = 0
    assert (_rgb(pal) == 255).all()
    la = Image.new("LA", (2, 2), (0, 255))
    assert (_rgb(la) == 0).all()


def test_to_rgb_maps_16_bit_and_cmyk_and_1_bit():
    sixteen = Image.fromarray(np.full((3, 3), 0xABCD, dtype=np.uint16))
    assert (_rgb(sixteen) == 0xAB).all()
    assert tuple(_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0)))[0, 0]) == (255, 255, 255)
    assert (_rgb(Image.new("1", (2, 2), 1)) == 255).all()


def test_to_rgb_applies_exif_orientation():
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    upright = to_rgb(Image.open(_png_with_exif(img, exif)))
    assert upright.size == (2, 6)


def _png_with_exif(img: Image.Image, exif: Image.Exif):
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif.tobytes())
    buf.seek(0)
    return buf
