"""The one scoring path: a separator on dataset items and estimates in folders give the same rows,
an item's estimate depends only on its own seed, and a bad item is skipped or raised."""
import numpy as np
import pytest
import soundfile as sf
import torch

from helpers_audio import make_mix_tree
from diffsep.data import build_items
from diffsep.evaluation.folders import folder_examples
from diffsep.evaluation.scoring import Scoring, score_estimates, score_separator
from diffsep.inference.separator import Separator
from diffsep.storage.audio import AudioError


def noisy_separator(n_src=2, rate=8000):
    """Estimates: the mixture split in two unequal parts plus noise from the separator's generator.
    mix (B, 1, n) -> (B, K, 1, n)."""
    def estimate(mix, generator):
        gains = torch.tensor([0.7, 0.3])[:, None, None]
        return mix[:, None] * gains + 0.05 * torch.randn(mix.shape[0], n_src, 1, mix.shape[-1], generator=generator)
    return Separator(estimate, n_src, rate, generator=torch.Generator())


@pytest.fixture
def items(tmp_path):
    make_mix_tree(tmp_path / "set", 3, n=2000)
    return build_items("folder", tmp_path, "set", n_src=2, sample_rate=8000)


def test_an_items_estimate_depends_on_its_own_seed_only(items):
    scores = score_separator(noisy_separator(), items, metrics=("si_sdr",), seed=5)
    alone = score_separator(noisy_separator(), items[2:], metrics=("si_sdr",), seed=7)
    assert alone.rows[0]["si_sdr"] == scores.rows[2]["si_sdr"]
    again = score_separator(noisy_separator(), items, metrics=("si_sdr",), seed=6)
    assert again.rows[0]["si_sdr"] != scores.rows[0]["si_sdr"]
    assert [r["nfe"] for r in scores.rows] == [1, 1, 1] and scores.info["rtf"] > 0


def test_separator_and_folder_modes_score_the_same_estimates_alike(items, tmp_path):
    kept = {}
    scores = score_separator(noisy_separator(), items, metrics=("si_sdr", "si_sdri", "sdr"),
                             on_item=lambda i, name, est, ref, mix, rate: kept.update({name: est}))
    for name, est in kept.items():  # write what was scored, then score it as folders
        for k in range(2):
            (tmp_path / "est" / f"s{k + 1}").mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "est" / f"s{k + 1}" / f"{name}.wav", est[k, 0], 8000, subtype="FLOAT")
    examples, info = folder_examples(tmp_path / "est", tmp_path / "set", tmp_path / "set" / "mix")
    folders = score_estimates(examples, Scoring(metrics=("si_sdr", "si_sdri", "sdr")))
    for a, b in zip(scores.rows, folders.rows):
        assert a["name"] == b["name"]
        for key in ("si_sdr", "si_sdri", "sdr"):
            assert a[key] == pytest.approx(b[key], abs=1e-4)
    assert set(scores.summary) == set(folders.summary) == {"si_sdr", "si_sdri", "sdr"}


def test_a_bad_item_is_skipped_when_reported_and_raised_otherwise(items):
    items[1].sources[0].write_bytes(b"RIFF garbage")
    reported = []
    scores = score_separator(noisy_separator(), items, metrics=("si_sdr",),
                             on_error=lambda name, message: reported.append(name))
    assert reported == ["item01"] and list(scores.failed) == ["item01"]
    assert [r["name"] for r in scores.rows] == ["item00", "item02"] and scores.info["failed"] == 1
    with pytest.raises(AudioError, match="unreadable audio"):
        score_separator(noisy_separator(), items, metrics=("si_sdr",))


def test_a_silent_estimate_scores_minus_infinity_and_is_left_out_of_the_summary(items):
    silent = Separator(lambda mix, generator: torch.zeros(mix.shape[0], 2, 1, mix.shape[-1]), 2, 8000)
    scores = score_separator(silent, items[:1], metrics=("si_sdr", "pesq"))
    assert scores.rows[0]["si_sdr"] == -np.inf and "pesq" not in scores.rows[0]
    assert scores.mean("si_sdr") == -np.inf  # validation's mean: a silent model is never best
    assert scores.summary["si_sdr"]["count"] == 0
    assert scores.summary["pesq"]["excluded"] == {"item00": "estimate s1 is silent"}
