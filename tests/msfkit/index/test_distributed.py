"""msfkit.index.distributed: an on-disk index whose pieces are filled in Ray tasks (on the session's
local Ray, and on a cluster of two nodes) answers exactly as the same index built in one process;
the line said without Ray. (An unreachable cluster: tests/cli/test_index.py.)"""

from __future__ import annotations

import subprocess
import sys

import faiss
import numpy as np
import pytest

from msfkit.cluster import ray_missing
from msfkit.index import build_index, open_folder
from tests.msfkit.index_stores import clustered_vectors, write_vector_store

N, D = 3000, 32


# every test here runs the installed command, a server or a Ray cluster: out of the quick loop
pytestmark = pytest.mark.slow


def centroids(index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return faiss.rev_swig_ptr(faiss.downcast_index(ivf.quantizer).get_xb(), ivf.nlist * ivf.d).copy()


@pytest.mark.ray
def test_pieces_filled_by_ray_tasks_answer_as_the_index_built_in_one_process(ray_local, tmp_path):
    x = clustered_vectors(N + 50, D, clusters=20, seed=0, spread=1.0)
    store = write_vector_store(tmp_path / "s", x[:N], shard_rows=400)
    one = build_index(store, tmp_path / "one", kind="ivf", recall=0.9)
    merged = build_index(store, tmp_path / "ray", kind="ivf", recall=0.9, engine="ray", piece_rows=800)
    assert merged["storage"] == "disk" and merged["build"]["engine"] == "ray"
    assert merged["build"]["pieces"] == 4  # 8 shards of 400 rows, 2 to a piece
    assert merged["search_params"] == one["search_params"]
    a, b = open_folder(tmp_path / "ray"), open_folder(tmp_path / "one")
    np.testing.assert_array_equal(centroids(a.index), centroids(b.index))  # one trained quantizer
    for got, want in zip(a.search_vectors(x[N:], 10), b.search_vectors(x[N:], 10), strict=True):
        np.testing.assert_array_equal(got, want)  # ids and distances, exactly


def test_the_message_without_ray_names_the_extra():
    assert ray_missing("ray") == "--engine ray needs Ray (ray is missing): pip install 'msfkit[ray]'"
    assert "(grpc is missing)" in ray_missing("grpc")


# A Ray cluster of two nodes on this machine (ray.cluster_utils.Cluster, one CPU each) builds the
# index in pieces; in its own process, as Ray allows one cluster per driver.
TWO_NODES = """
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from msfkit.index import build_index

root = Path(sys.argv[1])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, log_to_driver=False)
try:
    print(len([n for n in ray.nodes() if n["Alive"]]))
    build_index(root / "s", root / "ray", kind="ivf", recall=0.9, engine="ray", piece_rows=400)
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_of_two_nodes_builds_the_index_one_process_builds(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'msfkit[ray]'")
    x = clustered_vectors(N + 50, D, clusters=20, seed=0, spread=1.0)
    store = write_vector_store(tmp_path / "s", x[:N], shard_rows=400)
    build_index(store, tmp_path / "one", kind="ivf", recall=0.9)
    r = subprocess.run(
        [sys.executable, "-c", TWO_NODES, tmp_path], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["2"]  # both nodes were up while the pieces were filled
    a, b = open_folder(tmp_path / "ray"), open_folder(tmp_path / "one")
    assert a.info["build"]["pieces"] == 8
    for got, want in zip(a.search_vectors(x[N:], 10), b.search_vectors(x[N:], 10), strict=True):
        np.testing.assert_array_equal(got, want)
