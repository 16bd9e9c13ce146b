"""The `Encoder`: a ResNet backbone plus the preprocessing that goes with it.

A model folder is `config.json` + `model.safetensors` (backbone weights, torchvision key names)
+ `README.md` (model card). Loading is strict: a missing, unexpected or mis-shaped tensor is an
error that names it. Nothing is ever unpickled.

    enc = Encoder(EncoderConfig(arch="resnet18"))
    enc.save_pretrained("my-model")
    enc = Encoder.from_pretrained("my-model")        # or "org/name@revision" from the Hub
    vectors = enc.embed([PIL.Image.open("cat.jpg")])  # (1, 512) float32, L2-normalised
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from msfkit.models.backbones import build_backbone
from msfkit.models.card import render_card
from msfkit.models.config import EncoderConfig, fingerprint, read_config
from msfkit.models.errors import MsfkitError
from msfkit.models.files import atomic_write
from msfkit.models.hub import resolve_model_dir
from msfkit.models.preprocess import Preprocess, to_rgb
from msfkit.models.runtime import check_precision, evaluating

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_META = {"format": "pt"}  # safetensors metadata, as transformers writes it
CARD_NAME = "README.md"
_HTTP_LIBRARIES = ("httpx", "httpx2", "httpcore", "requests", "urllib3")  # what huggingface_hub may use


class Encoder(nn.Module):
    """Backbone + preprocessing config. `forward` gives pooled (N, D) features, not normalised."""

    def __init__(self, config: EncoderConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else build_backbone(config.arch, config.stem)
        self.name: str | None = None  # where it was loaded from: a folder or a Hub id
        self.revision: str | None = None  # the Hub commit it was loaded at

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @property
    def preprocess(self) -> Preprocess:
        """The config's eval preprocessing (`crop` in workers, `normalize` on the device)."""
        c = self.config
        return Preprocess(c.image_size, c.resize, c.interpolation, tuple(c.mean), tuple(c.std))

    def transform(self) -> Preprocess:
        """The eval preprocessing as a transform: PIL image -> normalised (3, S, S) tensor."""
        return self.preprocess

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the config and every weight: two encoders embed alike iff it matches."""
        state = self.backbone.state_dict().items()
        return fingerprint(self.config, ((k, t.detach().cpu().contiguous().numpy()) for k, t in state))

    @torch.no_grad()
    def embed(
        self,
        images: Image.Image | np.ndarray | torch.Tensor | Sequence[Image.Image | np.ndarray],
        batch_size: int = 64,
        device: str | torch.device | None = None,
        precision: str = "fp32",
    ) -> np.ndarray:
        """L2-normalised float32 (N, D) embeddings of one PIL image or a list, uint8 arrays (H, W[, C])
        or stacked (N, H, W[, C]), or a preprocessed float batch (N, 3, S, S). Images take the same
        to_rgb -> crop -> normalize -> `embed_batch` path as `msfkit embed`: the same vector everywhere."""
        check_precision(precision)
        device = torch.device(device) if device is not None else next(self.parameters()).device
        with evaluating(self):
            if isinstance(images, torch.Tensor) and images.is_floating_point():
                batches = images.split(batch_size)
            else:
                items = _image_list(images)
                prep = self.preprocess
                batches = (
                    prep.normalize(torch.stack([prep.crop(to_rgb(im)) for im in items[i : i + batch_size]]))
                    for i in range(0, len(items), batch_size)
                )
            out = [self.embed_batch(b.to(device), precision).cpu() for b in batches]
        if not out:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return torch.cat(out).numpy()

    def embed_batch(self, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """One preprocessed batch on the model's device -> L2-normalised float32 features."""
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            feats = self.backbone(x)
        return F.normalize(feats.float(), dim=1)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors and README.md into `directory` (atomically per file).

        An existing folder is replaced only when it is a model folder (has a config.json) or empty:
        a user's folder that happens to hold a README.md is never overwritten."""
        directory = Path(directory)
        if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_NAME).is_file():
            raise MsfkitError(f"{directory}: exists and is not a model folder (no {CONFIG_NAME}); untouched")
        if directory.exists() and not directory.is_dir():
            raise MsfkitError(f"{directory}: is a file, not a model folder")
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.backbone.state_dict().items()}
        config_text = json.dumps(self.config.to_dict(), indent=2) + "\n"
        card_text = render_card(self.config)
        try:
            atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata=WEIGHTS_META))
            atomic_write(directory / CONFIG_NAME, lambda p: p.write_text(config_text))
            atomic_write(directory / CARD_NAME, lambda p: p.write_text(card_text))
        except BaseException:
            if created:  # a folder this call made and could not fill: gone again
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike) -> Encoder:
        """Load a model folder or a Hub id `org/name[@revision]`, strictly."""
        directory, revision = resolve_model_dir(str(name))
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise MsfkitError(f"{name}: not a model folder (no {p.name})")
        # the weights replace every tensor, as they were read (no copy): the backbone is built
        # without the random init they would throw away
        config = read_config(config_path)
        encoder = cls(config, build_backbone(config.arch, config.stem, init=False))
        encoder.backbone.load_state_dict(load_weights(weights_path, encoder.backbone), assign=True)
        encoder.name, encoder.revision = str(name), revision
        return encoder.eval()


def push_folder(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload msfkit encoder",
) -> str:
    """Upload an existing model folder (config, weights, card) to the Hub; returns the commit URL."""
    from huggingface_hub import HfApi  # loads the Hub client: only a push needs it
    from huggingface_hub.errors import HfHubHTTPError  # loads the Hub client

    directory = Path(directory)
    for fname in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / fname).is_file():
            raise MsfkitError(f"{directory}: not a model folder (no {fname})")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
            commit_message=commit_message,
        )
    except (HfHubHTTPError, ValueError) as e:  # ValueError: the Hub refused the card's metadata
        raise MsfkitError(f"push to {repo_id} failed: {' '.join(str(e).split())[:300]}") from None
    except Exception as e:
        # no network, a refused connection, a timeout: whichever HTTP library huggingface_hub uses
        if not isinstance(e, OSError) and type(e).__module__.split(".")[0] not in _HTTP_LIBRARIES:
            raise
        endpoint = api.endpoint
        raise MsfkitError(f"push to {repo_id}: cannot reach {endpoint} ({type(e).__name__}: {e})") from None
    return str(getattr(info, "commit_url", info))


def load_weights(path: Path, module: nn.Module) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it matches `module` key by key and shape by shape; each
    tensor in the dtype of `module`'s (a float16 file loads into a float32 model)."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise MsfkitError(f"{path}: not a readable safetensors file ({e})") from None
    expected = module.state_dict()
    check_state_dict(state, expected, source=str(path))
    return {k: v.to(expected[k].dtype) for k, v in state.items()}


def check_state_dict(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Raise an error naming every missing, unexpected or mis-shaped tensor."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(
        f"{k} {tuple(got[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(got) & set(expected)
        if got[k].shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {_names(unexpected)}")
    if shapes:
        problems.append(f"wrong shape {_names(shapes)}")
    if problems:
        raise MsfkitError(f"{source}: weights do not match the config: {'; '.join(problems)}")


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _image_list(images) -> list[Image.Image]:
    """What a notebook user passes -> a list of PIL images; anything else is one clear error."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise MsfkitError(f"image arrays must be uint8 (H, W[, C]), not {images.dtype}")
        one = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4))
        return [Image.fromarray(images)] if one else [Image.fromarray(a) for a in images]
    if isinstance(images, (list, tuple)):
        return [im for item in images for im in _image_list(item)]
    raise MsfkitError(
        f"cannot embed a {type(images).__name__}: "
        "give PIL images, uint8 arrays or a preprocessed float tensor"
    )
