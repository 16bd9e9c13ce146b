"""The model card (README.md) written beside every model folder."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msfkit.models.encoder import EncoderConfig

RESULTS_BEGIN = "<!-- msfkit:results:begin -->"
RESULTS_END = "<!-- msfkit:results:end -->"


def render_card(config: EncoderConfig, results_markdown: str = "") -> str:
    """A Hub model card: front matter, what the model is, how to load it, its provenance and results."""
    p = config.provenance
    method = p.get("method", "unknown")
    lines = [
        "---",
        "library_name: msfkit",
        "pipeline_tag: image-feature-extraction",
        "tags: [msfkit, msf, self-supervised, image-feature-extraction, resnet]",
        "license: mit",
        "---",
        "",
        f"# {config.arch} image encoder ({method})",
        "",
        f"A {config.arch} backbone ({config.network} network) that maps an image to a "
        f"{config.embedding_dim}-d embedding, made with [msfkit](https://github.com/msfkit/msfkit).",
        "",
        "```python",
        "import msfkit",
        'encoder = msfkit.load("<this repo or folder>")',
        "vectors = encoder.embed(images)  # (N, D) float32, L2-normalised",
        "```",
        "",
        "## Preprocessing",
        "",
        f"Resize {config.resize} ({config.interpolation}) -> centre crop {config.image_size} -> "
        f"normalise mean {list(config.mean)} std {list(config.std)}.",
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(p, indent=2, sort_keys=True),
        "```",
        "",
        "## Results",
        "",
        RESULTS_BEGIN,
        results_markdown.strip() or "No evaluation recorded yet (`msfkit eval ... --card MODEL_DIR`).",
        RESULTS_END,
        "",
    ]
    return "\n".join(lines)


def replace_results(card: str, results_markdown: str) -> str:
    """The card with its results section replaced (appended when the card has none)."""
    block = f"{RESULTS_BEGIN}\n{results_markdown.strip()}\n{RESULTS_END}"
    start, end = card.find(RESULTS_BEGIN), card.find(RESULTS_END)
    if start == -1 or end == -1:
        return card.rstrip() + "\n\n## Results\n\n" + block + "\n"
    return card[:start] + block + card[end + len(RESULTS_END) :]
