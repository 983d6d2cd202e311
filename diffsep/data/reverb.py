"""Synthetic room reverberation (a dynamic-mixing augmentation; numpy and scipy only).

:func:`room_impulse_response` models a shoebox room: the direct path and the reflections of the
first 50 ms come from the image method (Allen & Berkley, 1979; images up to 3 reflections deep
along each axis, wall reflection coefficient from Sabine's absorption for the RT60 asked, taps
rounded to whole samples); the later reverberation is Gaussian noise under an envelope that decays
by 60 dB in RT60 seconds (faded in between 25 and 50 ms), carrying the share of the diffuse-field
energy of Sabine's theory that arrives after 50 ms in the
room. The response is scaled to a direct-path tap of 1, and the reverberant part is scaled down
where needed so that no other tap reaches 0.9 (the direct path stays the strongest: a far source in
a live room would otherwise be mostly tail).

:func:`reverberate` keeps the reverberant signal aligned at the direct path: the target of
dynamic mixing is the reverberant voice (its direct-path part is exactly the dry voice), so the
mixture stays the sum of the targets, which every model family assumes (mixture-consistent
outputs); separating and dereverberating at once would break that.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

SPEED_OF_SOUND = 343.0
DECAY = 3 * np.log(10)  # amplitude e-folds per RT60 for a 60 dB fall
MIXING_SECONDS = 0.05  # image-method reflections before this (after the direct path), noise after


def room_impulse_response(sample_rate: int, rt60: float, room, source, mic, rng: np.random.Generator,
                          order: int = 3) -> tuple[np.ndarray, int]:
    """The response from ``source`` to ``mic`` (xyz, metres) in a shoebox ``room`` (its three
    sides) of reverberation time ``rt60`` s; the tail noise is drawn from ``rng``.
    -> (rir (L,) float64 with rir[direct] = 1, direct: the direct path's sample index)."""
    room, source, mic = (np.asarray(v, dtype=np.float64) for v in (room, source, mic))
    volume = float(np.prod(room))
    surface = 2 * float(room[0] * room[1] + room[0] * room[2] + room[1] * room[2])
    absorption = float(np.clip(0.161 * volume / (surface * rt60), 0.02, 0.98))  # Sabine
    beta = np.sqrt(1 - absorption)
    # images: per axis, position (1 - 2p) s + 2 n L with p in {0, 1}, |n| <= order; |n - p| + |n| walls
    n = np.arange(-order, order + 1)
    p = np.array([0, 1])
    nn, pp = (g.reshape(-1) for g in np.meshgrid(n, p, indexing="ij"))
    axes = [((1 - 2 * pp) * source[d] + 2 * nn * room[d] - mic[d], np.abs(nn - pp) + np.abs(nn))
            for d in range(3)]
    (dx, rx), (dy, ry), (dz, rz) = axes
    dist = np.sqrt(dx[:, None, None] ** 2 + dy[None, :, None] ** 2 + dz[None, None, :] ** 2).reshape(-1)
    walls = (rx[:, None, None] + ry[None, :, None] + rz[None, None, :]).reshape(-1)
    direct_dist = float(np.linalg.norm(source - mic))
    direct = int(round(direct_dist / SPEED_OF_SOUND * sample_rate))
    mixing = int(MIXING_SECONDS * sample_rate)
    length = direct + int(np.ceil(rt60 * sample_rate)) + 1
    taps = np.round(dist / SPEED_OF_SOUND * sample_rate).astype(int)
    keep = (taps < min(length, direct + mixing)) & (walls > 0)  # early reflections only
    rir = np.zeros(length)
    np.add.at(rir, taps[keep], beta ** walls[keep] * direct_dist / dist[keep])
    # late reverberation: the diffuse energy relative to the direct path's, 16 π d² (1 - a) / (S a),
    # spread as exp(-2 DECAY t / rt60) from the direct path on; the noise carries the part after
    # the mixing time (faded in over its second half)
    t = np.arange(length - direct) / sample_rate
    envelope = np.exp(-DECAY * t / rt60) * np.clip(2 * t / MIXING_SECONDS - 1, 0.0, 1.0)
    diffuse = 16 * np.pi * direct_dist ** 2 * (1 - absorption) / (surface * absorption)
    tail_energy = diffuse * np.exp(-2 * DECAY * MIXING_SECONDS / rt60)
    rir[direct:] += rng.standard_normal(len(t)) * envelope * np.sqrt(tail_energy / np.sum(envelope ** 2))
    rir[direct] = 0.0
    loudest = np.abs(rir).max()
    if loudest > 0.9:
        rir *= 0.9 / loudest
    rir[direct] = 1.0
    return rir, direct


def random_rir(sample_rate: int, rng: np.random.Generator, rt60_range=(0.15, 0.6)) -> tuple[np.ndarray, int]:
    """A room drawn from ``rng``: sides 3-10 x 3-8 x 2.4-3.5 m, RT60 uniform in ``rt60_range``,
    microphone and source at least 0.5 m from the walls and 0.3-3 m apart.
    -> as :func:`room_impulse_response`."""
    room = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 3.5])
    rt60 = rng.uniform(*rt60_range)
    mic = rng.uniform(0.5, room - 0.5)
    for _ in range(100):  # rejection sampling of the source position
        source = rng.uniform(0.5, room - 0.5)
        if 0.3 <= np.linalg.norm(source - mic) <= 3.0:
            break
    else:
        source = mic + np.array([1.0, 0.0, 0.0]) * np.sign(room[0] / 2 - mic[0])
    return room_impulse_response(sample_rate, rt60, room, source, mic, rng)


def reverberate(x: np.ndarray, rir: np.ndarray, direct: int) -> np.ndarray:
    """``x`` (N,) convolved with ``rir`` (FFT convolution), aligned at the direct path: sample n of
    the output holds the direct sound of x[n] plus the reverberation of x[:n]. -> (N,) same dtype."""
    return fftconvolve(x, rir)[direct:direct + len(x)].astype(x.dtype)
