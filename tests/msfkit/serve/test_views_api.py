"""The map's and the curation lists' endpoints of a running `msfkit serve`, over real HTTP, on the
photo index (one store, no labels: its folder stands for the label)."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
import pytest
from matplotlib.path import Path as Polygon

from msfkit.curate import outliers

pytestmark = pytest.mark.slow  # one server for the session, started in a subprocess


@pytest.fixture(scope="module")
def points(client):
    body = client.get("/api/map", params={"method": "pca"}).json()
    return np.frombuffer(base64.b64decode(body["points"]), dtype="<f4").reshape(-1, 2)


def test_the_map_has_a_finite_point_per_row_and_colours_aligned_with_them(client, index, points):
    assert points.shape == (len(index), 2) == (21, 2) and np.isfinite(points).all()
    assert len({tuple(p) for p in points.round(5)}) > 12  # the photos lie apart
    labels = client.get("/api/map/colours", params={"by": "label"}).json()
    assert labels["names"] == ["photos"] and labels["values"] == [0] * 21  # no label: the folder
    groups = client.get("/api/map/colours", params={"by": "group", "threshold": 0.96}).json()
    expected = np.full(21, -1)
    dedup = index.dedup(threshold=0.96)
    expected[dedup["row"].to_numpy()] = dedup["group"].to_numpy()
    assert groups["values"] == expected.tolist() and groups["total"] == 3
    scores = client.get("/api/map/colours", params={"by": "outlier"}).json()["values"]
    table = outliers(index)
    assert [scores[r] for r in table["row"]] == pytest.approx(table["score"].tolist(), abs=1e-4)


def test_a_lasso_returns_exactly_the_rows_inside_it(client, points):
    (x0, y0), (x1, y1) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    lasso = [[x0 - 1, y0 - 1], [(x0 + x1) / 2, y0 - 1], [(x0 + x1) / 2, y1 + 1], [x0 - 1, (y0 + y1) / 2]]
    expected = np.flatnonzero(Polygon(np.array(lasso)).contains_points(points)).tolist()
    body = client.post("/api/map/select", params={"limit": 3}, json={"polygon": lasso}).json()
    assert body["rows"] == expected and 0 < body["total"] == len(expected) < 21
    assert [item["row"] for item in body["items"]] == expected[:3] and body["more"] == (len(expected) > 3)
    assert all(item["path"].endswith("/" + item["rel"]) for item in body["items"])


def test_the_curation_lists_answer_or_say_why_not(client, index):
    listed = client.get("/api/curate/outliers", params={"limit": 5}).json()
    assert [i["row"] for i in listed["items"]] == outliers(index)["row"].tolist()[:5]
    assert (listed["total"], listed["score"], listed["k"]) == (21, "knn", 10)
    issues = client.get("/api/curate/label-issues")
    assert issues.status_code == 400 and "label issues need at least 2 classes" in issues.json()["error"]
    leaks = client.get("/api/curate/leaks")
    assert leaks.status_code == 409 and "msfkit index TRAIN TEST -o INDEX" in leaks.json()["error"]


def test_rows_marked_on_the_map_join_the_removal_list_once(client, index):
    groups = index.dedup(threshold=0.96)
    listed = groups[groups["row"] != groups.groupby("group")["row"].transform("min")]  # removed by keep=first
    alone = sorted(set(range(21)) - set(groups["row"]))[:2]
    marked = [alone[0], int(listed["row"].iloc[0]), alone[1], alone[0]]  # one already listed, one twice
    text = client.post("/api/dedup/removals.csv", params={"threshold": 0.96}, json={"remove": marked}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(listed) + 2
    extra = rows[len(listed) :]
    assert [r["path"] for r in extra] == index.absolute_paths(alone)
    assert all(r["reason"] == "marked" and r["group"] == r["kept"] == "" for r in extra)
    assert all(r["group"].isdigit() for r in rows[: len(listed)])  # the groups' numbers stay whole


@pytest.mark.parametrize(
    ("url", "body", "status", "words"),
    [
        ("/api/map/select", {"polygon": [[0, 0], [1, 0]]}, 400, "a lasso has 3 to 1000 vertices, not 2"),
        ("/api/map/select", {"polygon": [[0, 0], [1, "x"], [0, 1]]}, 400, "polygon[1]: an [x, y] pair"),
        ("/api/map/select", {"polygon": [[0, 0], [1, 0], [0, 1]], "method": "tsne"}, 400, "one of pca, umap"),
        ("/api/map/select", {"shape": []}, 400, '"shape": not a field of a lasso'),
        ("/api/map/select", {}, 400, "polygon: the lasso's [x, y] vertices are expected"),
        ("/api/dedup/removals.csv", {"remove": [21]}, 404, "the index holds rows 0 to 20"),
        ("/api/dedup/removals.csv", {"remove": ["3"]}, 400, 'remove[0]: a whole number is expected, not "3"'),
    ],
)
def test_bad_bodies_are_4xx_naming_the_field(client, url, body, status, words):
    r = client.post(url, json=body)
    assert (r.status_code, words in r.json()["error"]) == (status, True), r.text


def test_bad_parameters_are_400_naming_them(client):
    for url, words in [
        ("/api/map?method=tsne", "method='tsne': one of pca, umap"),
        ("/api/map/colours?by=size", "by='size': one of label, group, outlier"),
        ("/api/curate/everything", "no curation view 'everything'"),
        ("/api/curate/outliers?limit=0", "limit between 1 and 200"),
        ("/api/curate/outliers?score=lof", "score='lof': one of knn, mahalanobis"),
        ("/api/map/colours?by=outlier&score=lof", "score='lof': one of knn, mahalanobis"),
        # 21 photos in 512 dimensions: too few for a covariance, said in one line
        ("/api/curate/outliers?score=mahalanobis", "21 images of 512 dimensions; the mahalanobis"),
        ("/api/map/colours?by=outlier&score=mahalanobis", "21 images of 512 dimensions"),
    ]:
        r = client.get(url)
        assert (r.status_code, words in r.json()["error"]) == (400, True), (url, r.text)
