"""`msfkit.eval.run`: the protocols' report rows, and the accuracy-over-k curve drawn from the same
neighbour search (same train rows, seed and memory budget) as the numbers it illustrates."""

from __future__ import annotations

import numpy as np
import pytest

from msfkit.eval.inputs import EvalInputs
from msfkit.eval.report import write_plots
from msfkit.eval.run import EvalOptions, evaluate, percent, prediction_name
from msfkit.models.errors import MsfkitError
from msfkit.models.runtime import cpu_has_fast_bf16


def _inputs(n_train: int = 240, n_val: int = 80) -> EvalInputs:
    """Four noisy clusters, labelled by cluster, so that k-NN is right often but not always."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    labels = rng.integers(0, 4, n_train + n_val)
    x = centres[labels] + 1.2 * rng.standard_normal((len(labels), 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return EvalInputs(
        x[:n_train],
        labels[:n_train],
        x[n_train:],
        labels[n_train:],
        model={"name": "m", "fingerprint": "f"},
        source={"kind": "stores", "train": "t", "val": "v"},
    )


def test_the_curve_is_the_evaluations_own_predictions(tmp_path):
    inputs = _inputs()
    opts = EvalOptions(
        knn_protocols=("msf", "dino"),
        ks=(1, 20),
        curve_ks=(1, 2, 5, 20, 50, 500),
        train_fraction=0.5,
        seed=3,
        memory_budget_bytes=4096,
    )
    report, predictions = evaluate(inputs, opts)
    # report rows only for the asked k; predictions also for the curve's k up to the 120 train rows
    assert [(r["protocol"], r["k"]) for r in report["results"]] == [
        ("knn-msf", 1),
        ("knn-msf", 20),
        ("knn-dino", 1),
        ("knn-dino", 20),
    ]
    assert sorted(predictions) == sorted(
        prediction_name(f"knn-{p}", k) for p in ("msf", "dino") for k in (1, 2, 5, 20, 50)
    )
    for row in report["results"]:
        pred = predictions[prediction_name(row["protocol"], row["k"])]
        assert percent(pred == inputs.val_labels) == row["top1"]
    plots = write_plots(tmp_path, inputs, report, predictions)
    assert sorted(p.rsplit("/", 1)[1] for p in plots) == sorted(
        ["knn_accuracy_over_k.png"] + [f"confusion_{r['protocol']}-k{r['k']}.png" for r in report["results"]]
    )


def test_without_a_curve_only_the_asked_k_are_searched():
    inputs = _inputs()
    report, predictions = evaluate(inputs, EvalOptions(ks=(3,)))
    assert list(predictions) == ["knn-msf-k3"] and [r["k"] for r in report["results"]] == [3]


def test_auto_precision_is_resolved_once_for_the_evaluations_device():
    """The linear recipe and the features run in what `auto` became: bf16 only where it is native."""
    assert EvalOptions(precision="auto").precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert EvalOptions(precision="fp32").precision == "fp32"
    with pytest.raises(MsfkitError, match="precision must be one of auto, fp32, bf16, not 'fp16'"):
        EvalOptions(precision="fp16")
