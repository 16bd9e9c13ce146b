"""`msfkit train --help-keys`: every config key with its type, default and meaning.

The meaning is the comment on the key's own line in `TrainConfig` (training/config.py), read from
the source with `tokenize`; the section a key sits under is the comment line above its group.
Types and defaults come from the dataclass itself, so nothing here is a second copy.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import textwrap
import tokenize
from dataclasses import dataclass

from msfkit.training.config import TrainConfig

HEADER = ("KEY", "TYPE", "DEFAULT", "MEANING")


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: object
    meaning: str  # "" when the field has no comment (a test forbids that)
    section: str


def config_keys() -> list[Key]:
    """The keys of TrainConfig in source order."""
    source = textwrap.dedent(inspect.getsource(TrainConfig))
    trailing: dict[int, str] = {}  # line -> comment after code on that line
    headers: dict[int, str] = {}  # line -> comment alone on its line
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            alone = tok.line.strip().startswith("#")
            (headers if alone else trailing)[tok.start[0]] = text
    lines = {
        node.target.id: node.lineno
        for node in ast.parse(source).body[0].body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    keys = []
    for f in dataclasses.fields(TrainConfig):
        line = lines[f.name]
        above = [n for n in headers if n < line]
        section = headers[max(above)] if above else ""
        keys.append(Key(f.name, str(f.type), f.default, trailing.get(line, ""), section))
    return keys


def render_keys() -> str:
    """The table `--help-keys` prints: a header, then per section a `# section` line and its
    `KEY  TYPE  DEFAULT  MEANING` rows (the default as JSON)."""
    keys = config_keys()
    rows = [(k.name, k.type, json.dumps(k.default), k.meaning) for k in keys]
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(3)]
    out, section = (
        ["  ".join(c.ljust(w) for c, w in zip(HEADER[:3], widths, strict=True)) + "  " + HEADER[3]],
        None,
    )
    for key, row in zip(keys, rows, strict=True):
        if key.section != section:
            section = key.section
            out.append(f"# {section}")
        out.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return "\n".join(out) + "\n"
