"""Waveform losses of the discriminative families: L1 in a fixed order (music stems) and negative
SI-SNR with utterance-level permutation-invariant training (Conv-TasNet)."""
from __future__ import annotations

from torch import Tensor

from ..core.sdr import pit_si_sdr


def l1_loss(est: Tensor, sources: Tensor) -> Tensor:
    """Mean absolute error per item, sources in their order (music stems). (B, ...) -> (B,)."""
    return (est.reshape(sources.shape) - sources).abs().flatten(1).mean(1)


def pit_si_snr_loss(est: Tensor, sources: Tensor) -> Tensor:
    """Negative SI-SNR with utterance-level permutation-invariant training (Conv-TasNet):
    −max over π of the mean SI-SNR of est against π(sources). (B, K, N), (B, K, N) -> (B,)."""
    scores, _ = pit_si_sdr(est, sources)
    return -scores.mean(-1)
