"""k-NN protocols on real Fashion-MNIST features of a tiny real ResNet18: agreement with
scikit-learn (msf) and with the DINO formula computed here (dino), labels of any kind, chunking,
bf16 shortlisting, and the errors a user can cause."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from msfkit.data.datasets import ArrayImageDataset, load_fashion_mnist
from msfkit.eval.features import extract_features
from msfkit.eval.knn import knn_accuracy, knn_classify, knn_scores
from msfkit.models import Encoder, EncoderConfig
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import cpu_has_fast_bf16

N_TRAIN, N_VAL = 600, 200


@pytest.fixture(scope="module")
def feats():
    """(train x, train y, val x, val y): centre-crop features of real Fashion-MNIST images."""
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(arch="resnet18", stem="cifar", image_size=32, resize=32))
    xi, yi = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    # bf16 autocast where the CPU computes bf16 natively (faster there; emulated, far slower, elsewhere)
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    tx, ty = extract_features(enc, ArrayImageDataset(xi[:N_TRAIN], yi[:N_TRAIN]), precision=precision)
    vx, vy = extract_features(enc, ArrayImageDataset(xt[:N_VAL], yt[:N_VAL]), precision=precision)
    return tx, ty, vx, vy


@pytest.mark.slow
def test_features_are_unit_rows_with_their_labels(feats):
    tx, ty, _, _ = feats
    assert tx.shape == (N_TRAIN, 512) and tx.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(tx, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(ty, load_fashion_mnist("train")[1][:N_TRAIN])


@pytest.mark.parametrize("k", [1, 20])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.slow
def test_msf_protocol_agrees_with_sklearn(feats, k, precision):
    tx, ty, vx, _ = feats
    ours = knn_classify(tx, ty, vx, ks=(k,), protocol="msf", precision=precision)[k]
    sk = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="uniform", algorithm="brute").fit(
        tx, ty
    )
    nbrs = sk.kneighbors(vx, return_distance=False)
    votes = np.stack([np.bincount(ty[row], minlength=10) for row in nbrs])
    tied = (votes == votes.max(1, keepdims=True)).sum(1) > 1
    # Where the vote is clear, the answer is sklearn's; sklearn breaks ties by the smallest label,
    # msfkit by the tied class whose nearest voter is closest (the documented rule).
    np.testing.assert_array_equal(ours[~tied], sk.predict(vx[~tied]))
    for row, pred in zip(np.flatnonzero(tied), ours[tied], strict=True):
        best = np.flatnonzero(votes[row] == votes[row].max())
        assert pred == next(c for c in ty[nbrs[row]] if c in best)
    assert (~tied).sum() > N_VAL // 2


@pytest.mark.slow
def test_dino_protocol_matches_the_formula(feats):
    tx, ty, vx, _ = feats
    t, k = 0.07, 20
    sims = vx.astype(np.float64) @ tx.astype(np.float64).T
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    scores = np.zeros((len(vx), 10))
    for row in range(len(vx)):
        np.add.at(scores[row], ty[nn[row]], np.exp(sims[row, nn[row]] / t))
    expected_top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    got = knn_scores(tx, ty, vx, ks=(k,), protocol="dino", temperature=t, top=5)[k]
    np.testing.assert_array_equal(got, expected_top5)


@pytest.mark.slow
def test_accuracy_reports_top1_and_top5_per_k(feats):
    tx, ty, vx, vy = feats
    acc = knn_accuracy(tx, ty, vx, vy, ks=(10, 20), protocol="dino")
    preds = knn_classify(tx, ty, vx, ks=(10, 20), protocol="dino")
    assert acc["top1"] == {k: pytest.approx((preds[k] == vy).mean() * 100) for k in (10, 20)}
    assert all(acc["top5"][k] >= acc["top1"][k] for k in (10, 20))
    assert acc["n_train"] == N_TRAIN and acc["n_val"] == N_VAL and acc["temperature"] == 0.07
    assert acc["top1"][20] > 50  # ten classes: chance is 10 %
    msf = knn_accuracy(tx, ty, vx, vy)
    assert sorted(msf["top1"]) == [1, 20] and msf["top5"] == {} and msf["temperature"] is None


@pytest.mark.parametrize("budget", [4 * 250, 4 * N_TRAIN * 7, None])
@pytest.mark.slow
def test_answers_do_not_depend_on_the_memory_budget(feats, budget):
    tx, ty, vx, _ = feats
    vx = vx[:50]  # a budget below one train row means one query at a time
    whole = knn_scores(tx, ty, vx, ks=(1, 20), protocol="dino", precision="fp32")
    chunked = knn_scores(tx, ty, vx, ks=(1, 20), protocol="dino", memory_budget_bytes=budget)
    for k in (1, 20):
        np.testing.assert_array_equal(chunked[k], whole[k])


@pytest.mark.slow
def test_any_label_values(feats):
    tx, ty, vx, _ = feats
    base = knn_classify(tx, ty, vx, ks=(1, 20))
    names = np.array(
        ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    )
    sparse = ty * 7 + 1000  # gaps, not starting at 0; same order as the original labels
    for relabel in (lambda y: y * 7 + 1000, lambda y: names[y]):
        got = knn_classify(tx, relabel(ty), vx, ks=(1, 20))
        if relabel(ty).dtype.kind == "U":
            # Class order changes (alphabetical), so only the clear-cut k=1 answer must map over exactly.
            np.testing.assert_array_equal(got[1], names[base[1]])
        else:
            for k in (1, 20):
                np.testing.assert_array_equal(got[k], base[k] * 7 + 1000)
    assert set(np.unique(knn_classify(tx, sparse, vx, ks=(20,))[20])) <= set(np.unique(sparse))


@pytest.mark.slow
def test_single_class_predicts_it(feats):
    tx, _, vx, _ = feats
    acc = knn_accuracy(tx, np.full(N_TRAIN, 5), vx, np.full(N_VAL, 5), ks=(1, 20))
    assert acc["top1"] == {1: 100.0, 20: 100.0} and acc["n_classes"] == 1


@pytest.mark.slow
def test_ties_go_to_the_class_of_the_nearest_voter():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    labels = np.array([3, 3, 8, 8])
    query = np.array([[0.2, 1.0], [1.0, 0.2]], dtype=np.float32)
    preds = knn_classify(train, labels, query, ks=(2, 4))
    assert preds[4].tolist() == [8, 3]  # 2-2 vote: the nearest neighbour's class wins
    one_each = knn_classify(train[[0, 2]], labels[[0, 2]], query, ks=(2,))[2]
    assert one_each.tolist() == [8, 3]


@pytest.mark.slow
def test_k_larger_than_train_set_is_an_error(feats):
    tx, ty, vx, _ = feats
    with pytest.raises(MsfkitError, match="larger than the train set"):
        knn_classify(tx[:10], ty[:10], vx, ks=(20,))
    assert len(knn_classify(tx[:20], ty[:20], vx, ks=(20,))[20]) == N_VAL


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y, v, w: knn_accuracy(x, y, v, w + 100), "val has classes the train set lacks"),
        (lambda x, y, v, w: knn_classify(x[:0], y[:0], v), "train split is empty"),
        (lambda x, y, v, w: knn_classify(x, y, v[:0]), "val split is empty"),
        (lambda x, y, v, w: knn_classify(x, y[:5], v), "train labels"),
        (lambda x, y, v, w: knn_classify(x, y, v[:, :100]), "-d"),
        (lambda x, y, v, w: knn_classify(x, y, v, protocol="cosine"), "unknown k-NN protocol"),
        (lambda x, y, v, w: knn_classify(x, y, v, ks=(0,)), "at least 1"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_clear_error(feats, call, message):
    with pytest.raises(MsfkitError, match=message):
        call(*feats)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.slow
def test_cuda_gives_the_cpu_answers(feats):
    tx, ty, vx, _ = feats
    cpu = knn_scores(tx, ty, vx, ks=(1, 20), protocol="dino", precision="fp32")
    gpu = knn_scores(tx, ty, vx, ks=(1, 20), protocol="dino", device="cuda")
    for k in (1, 20):
        np.testing.assert_array_equal(gpu[k], cpu[k])
