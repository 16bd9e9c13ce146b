"""msfkit.index.build with on_disk: pieces merged into index.ivfdata, searched memory-mapped, answer
exactly as the same index built in memory; the lists stay out of the process's own memory."""

from __future__ import annotations

import os
import subprocess
import sys

import faiss
import numpy as np
import pytest

from msfkit.index import build_index, open_folder
from msfkit.models.errors import MsfkitError
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 3000, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 3,000 x 32 store in shards of 400 rows and 50 unindexed queries from the same clusters."""
    x = clustered_vectors(N + 50, D, clusters=20, seed=0, spread=1.0)
    root = write_vector_store(tmp_path_factory.mktemp("store") / "s", x[:N], shard_rows=400)
    return root, x[N:]


def centroids(index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return faiss.rev_swig_ptr(faiss.downcast_index(ivf.quantizer).get_xb(), ivf.nlist * ivf.d).copy()


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_an_index_on_disk_answers_as_the_same_index_in_memory(data, tmp_path, kind):
    store, q = data
    in_memory = build_index(store, tmp_path / "ram", kind=kind, recall=0.9)
    on_disk = build_index(store, tmp_path / "disk", kind=kind, recall=0.9, on_disk=True, piece_rows=1000)
    files = ["index.faiss", "index.ivfdata", "index.json", "rows.parquet"]
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == files
    assert on_disk["storage"] == "disk" and on_disk["build"]["pieces"] == 3
    assert on_disk["factory"] == in_memory["factory"]
    assert on_disk["search_params"] == in_memory["search_params"]
    assert on_disk["recall"]["recall_at_10"] == in_memory["recall"]["recall_at_10"]
    ram, disk = open_folder(tmp_path / "ram"), open_folder(tmp_path / "disk")
    lists = faiss.extract_index_ivf(disk.index).invlists
    assert type(faiss.downcast_InvertedLists(lists)).__name__ == "OnDiskInvertedLists"
    np.testing.assert_array_equal(centroids(disk.index), centroids(ram.index))  # one trained quantizer
    for a, b in zip(disk.search_vectors(q, 10), ram.search_vectors(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)  # ids and distances, exactly


def test_a_moved_index_on_disk_finds_its_lists_beside_it(data, tmp_path):
    store, q = data
    build_index(store, tmp_path / "a", kind="ivf", on_disk=True)
    before = open_folder(tmp_path / "a").search_vectors(q, 5)
    (tmp_path / "a").rename(tmp_path / "b")
    after = open_folder(tmp_path / "b").search_vectors(q, 5)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)


def test_lists_of_another_index_or_none_are_refused(data, tmp_path):
    store, _ = data
    build_index(store, tmp_path / "a", kind="ivf", on_disk=True)
    build_index(store, tmp_path / "b", kind="ivf", on_disk=True, seed=1)
    with open(tmp_path / "b" / "index.ivfdata", "ab") as f:
        f.write(b"\0" * 8)
    (tmp_path / "a" / "index.ivfdata").write_bytes((tmp_path / "b" / "index.ivfdata").read_bytes())
    with pytest.raises(MsfkitError, match="index.ivfdata: does not belong to this index.json"):
        open_folder(tmp_path / "a")
    (tmp_path / "a" / "index.ivfdata").unlink()
    with pytest.raises(MsfkitError, match="stored on disk, but index.ivfdata is missing"):
        open_folder(tmp_path / "a")


def test_flat_and_hnsw_cannot_be_stored_on_disk(data, tmp_path):
    store, _ = data
    for kind in ("flat", "hnsw"):
        with pytest.raises(MsfkitError, match=f"--type {kind} cannot be stored on disk"):
            build_index(store, tmp_path / "ix", kind=kind, on_disk=True)
    assert list(tmp_path.iterdir()) == []


# In a fresh process: open and search the index folder argv[2] (so libraries and tables are loaded),
# then print how much anonymous memory (not the page cache of mapped files) opening and searching
# the index folder argv[1] adds. pyarrow allocates from malloc (ARROW_DEFAULT_MEMORY_POOL=system),
# not from its own pool, which keeps megabytes of freed tables resident at random.
GROWTH = """
import ctypes
import sys
import numpy as np
from msfkit.index import open_folder

def anon():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("RssAnon:")).split()[1]) * 1024

queries = np.random.default_rng(0).standard_normal((200, 128)).astype("float32")
warm = open_folder(sys.argv[2])
warm.search_vectors(queries, 10)
ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the OS: new lists cannot hide in it
before = anon()
index = open_folder(sys.argv[1])  # held while measured: a freed index may give its memory back
index.search_vectors(queries, 10)
print(anon() - before)
"""


@pytest.mark.slow
def test_searching_an_index_on_disk_keeps_its_lists_out_of_process_memory(tmp_path):
    x = clustered_vectors(20_000, 128, clusters=50, seed=4)
    store = write_vector_store(tmp_path / "s", x, shard_rows=5_000)
    build_index(store, tmp_path / "disk", kind="ivf", on_disk=True, recall=0.5)
    build_index(store, tmp_path / "ram", kind="ivf", recall=0.5)
    lists = (tmp_path / "disk" / "index.ivfdata").stat().st_size  # 20,000 x (512 + 8) bytes
    disk, ram = (
        int(
            subprocess.run(
                [sys.executable, "-c", GROWTH, tmp_path / name, tmp_path / "disk"],
                capture_output=True,
                env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"},
                text=True,
                check=True,
            ).stdout
        )
        for name in ("disk", "ram")
    )
    assert ram - disk > 0.8 * lists  # read into memory, the lists are in the process; mapped, they are not
    assert disk < 0.5 * lists  # (the rest is the row table and search buffers)
