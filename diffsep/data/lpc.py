"""Linear prediction shared by the voice augmentations (numpy only): Levinson-Durbin on many
frames at once."""
from __future__ import annotations

import numpy as np


def levinson(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictors of autocorrelations ``r`` (order + 1, T) (one column per frame; r[0] > 0).
    -> (a (order + 1, T) with a[0] = 1, the prediction-error filter A(z) = sum a_i z^-i;
    k (order, T), the reflection coefficients, each clipped to ±0.999 so that 1 / A is stable)."""
    a = np.zeros((order + 1, r.shape[1]))
    a[0] = 1.0
    k_all = np.zeros((order, r.shape[1]))
    err = r[0].astype(np.float64).copy()
    for i in range(1, order + 1):
        k = np.clip(-np.einsum("jt,jt->t", a[:i], r[i:0:-1]) / np.where(err > 0, err, 1.0), -0.999, 0.999)
        a[1:i + 1] = a[1:i + 1] + k * a[i - 1::-1][:i]
        err = err * (1 - k ** 2)
        k_all[i - 1] = k
    return a, k_all


def step_up(k: np.ndarray) -> np.ndarray:
    """Reflection coefficients (order, T) -> prediction-error filters a (order + 1, T), a[0] = 1."""
    a = np.zeros((k.shape[0] + 1, k.shape[1]))
    a[0] = 1.0
    for i in range(1, k.shape[0] + 1):
        a[1:i + 1] = a[1:i + 1] + k[i - 1] * a[i - 1::-1][:i]
    return a
