"""Tiny synthetic dataset trees for data and training tests."""
from pathlib import Path

import numpy as np
import soundfile as sf


def tone_sources(n_src: int, n: int, seed: int, sr: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    rows = [0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t + k))
            + 0.02 * rng.standard_normal(n) for k in range(n_src)]
    return np.stack(rows).astype(np.float32)


def make_mix_tree(base: Path, n_items: int, n_src: int = 2, sr: int = 8000, n: int = 4000,
                  seed: int = 0) -> list[str]:
    """base/{mix,s1..sK}/itemXX.wav with mix = sum of sources."""
    names = []
    for i in range(n_items):
        s = tone_sources(n_src, n + 97 * i, seed * 1000 + i, sr)
        name = f"item{i:02d}"
        for k in range(n_src):
            (base / f"s{k + 1}").mkdir(parents=True, exist_ok=True)
            sf.write(base / f"s{k + 1}" / f"{name}.wav", s[k], sr, subtype="FLOAT")
        (base / "mix").mkdir(parents=True, exist_ok=True)
        sf.write(base / "mix" / f"{name}.wav", s.sum(0), sr, subtype="FLOAT")
        names.append(name)
    return names


def make_train_cv_tree(root: Path, n_train: int, n: int = 2500) -> Path:
    """root/tr (n_train items) and root/cv (2 items) in the folder layout."""
    make_mix_tree(root / "tr", n_train, n=n)
    make_mix_tree(root / "cv", 2, n=n, seed=1)
    return root


def write_refs_and_estimates(root, n_items=3, snr_db=10.0):
    """root/ref/{mix,s1,s2}, root/est/{s1,s2}: estimates = refs + orthogonal-ish noise at snr_db,
    in swapped order for odd items."""
    rng = np.random.default_rng(0)
    for i in range(n_items):
        s = tone_sources(2, 4000 + 50 * i, seed=i)
        name = f"utt{i}"
        est = []
        for k in range(2):
            n = rng.standard_normal(s.shape[1]).astype(np.float32)
            n -= n @ s[k] / (s[k] @ s[k]) * s[k]
            n *= np.sqrt((s[k] @ s[k]) / (n @ n) * 10 ** (-snr_db / 10))
            est.append(s[k] + n)
        if i % 2:
            est = est[::-1]
        for k in range(2):
            for d, x in (("ref", s[k]), ("est", est[k])):
                (root / d / f"s{k + 1}").mkdir(parents=True, exist_ok=True)
                sf.write(root / d / f"s{k + 1}" / f"{name}.wav", x, 8000, subtype="FLOAT")
        (root / "ref" / "mix").mkdir(exist_ok=True)
        sf.write(root / "ref" / "mix" / f"{name}.wav", s.sum(0), 8000, subtype="FLOAT")
