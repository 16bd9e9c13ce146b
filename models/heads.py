"""The MSF projection and prediction heads (Koohpayegani et al., ICCV 2021, Sec. 4).

Both are `Linear(d, 2d) -> BatchNorm1d(2d) -> ReLU -> Linear(2d, d/4)` on the backbone width d
(ResNet50: 2048 -> 4096 -> 512; ResNet18: 512 -> 1024 -> 128); the prediction head has the same
hidden width applied to the projection (512 -> 4096 -> 512). Module indices 0, 1, 3 match the
reference code's `fc.{0,1,3}` and `predict_q.{0,1,3}` keys.
"""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> BN -> ReLU -> Linear, no BN on the output."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


def projection_head(feature_dim: int) -> nn.Sequential:
    """d -> 2d -> d/4 (ResNet50: 2048 -> 4096 -> 512)."""
    return mlp(feature_dim, 2 * feature_dim, feature_dim // 4)


def prediction_head(feature_dim: int) -> nn.Sequential:
    """d/4 -> 2d -> d/4 on the projection (ResNet50: 512 -> 4096 -> 512)."""
    return mlp(feature_dim // 4, 2 * feature_dim, feature_dim // 4)
