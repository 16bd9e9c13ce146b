"""Model-name resolution: a local folder, or `org/name[@revision]` on the Hugging Face Hub.

Refuses to guess: anything else is an error that lists the accepted forms. Hub downloads go
through huggingface_hub, so its cache, HF_HOME, HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN apply; it
is imported only for a Hub id (0.2-0.3 s that a local model folder does not pay).
"""

from __future__ import annotations

import re
from pathlib import Path

from msfkit.models.errors import MsfkitError

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
FORMS = "a model folder, 'org/name' or 'org/name@revision' (a Hugging Face Hub repo)"
MODEL_FILES = ["config.json", "model.safetensors", "README.md"]


def parse_hub_id(name: str) -> tuple[str, str | None] | None:
    """('org/name', revision or None) if `name` has the Hub form, else None."""
    m = HUB_ID.match(name)
    return (m["repo"], m["revision"]) if m else None


def resolve_model_dir(name: str) -> tuple[Path, str | None]:
    """(local folder holding the model files, Hub commit or None) for a model name."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path, None
    hub = parse_hub_id(name)
    if hub is None or path.exists() or name.startswith((".", "/", "~")):
        what = "not a folder" if path.exists() else "no such folder"
        raise MsfkitError(f"model {name!r}: {what}; expected {FORMS}")
    return download(*hub)


def download(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Fetch the model files of a Hub repo at `revision` (cache first); returns (folder, commit)."""
    from huggingface_hub import snapshot_download  # loads the Hub client: a model folder needs none
    from huggingface_hub.errors import (  # loads the Hub client
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES))
    except RevisionNotFoundError:
        raise MsfkitError(f"model {where}: no such revision on the Hub") from None
    except GatedRepoError:
        raise MsfkitError(f"model {where}: gated repo; log in with an account that has access") from None
    except RepositoryNotFoundError:
        raise MsfkitError(
            f"model {where}: no such repo on the Hub (or it is private: set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError:
        raise MsfkitError(
            f"model {where}: not in the local cache and the Hub cannot be reached (offline?)"
        ) from None
    except HfHubHTTPError as e:
        raise MsfkitError(f"model {where}: Hub error: {str(e).splitlines()[0]}") from None
    missing = [f for f in MODEL_FILES[:2] if not (folder / f).is_file()]
    if missing:
        raise MsfkitError(f"model {where}: the repo has no {', '.join(missing)}; is it an msfkit model?")
    return folder, folder.name
