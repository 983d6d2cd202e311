"""From checkpoints to separators: loading every format, settings carried by the checkpoint,
sampler overrides, chunk arithmetic, scoring defaults for evaluation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_checkpoint
from diffsep.storage.checkpoint import CheckpointError, safe_load
from diffsep.data import Item
from diffsep.inference.loading import (chunk_samples, load_separator, load_trained, make_separator,
                                       separate_signal)
from diffsep.evaluation.scoring import dataset_scoring


def test_reference_checkpoint_becomes_a_config_and_a_model(reference_fixture):
    trained = load_trained(reference_fixture["checkpoint"])
    cfg = trained.config
    assert cfg.model.kind == "diffsep" and cfg.model.nf == trained.model.net.init_kwargs["nf"] == 16
    assert (cfg.sampler.steps, cfg.sampler.snr, cfg.sampler.corrector_steps, cfg.sampler.t_eps) == (30, 0.5, 1, 0.03)
    assert cfg.data.sample_rate == 8000 and cfg.sde.gamma == reference_fixture["checkpoint"]["hyper_parameters"]["config"]["model"]["sde"]["d_lambda"]
    out = trained.model(**reference_fixture["inputs"])
    err = (out - reference_fixture["expected"]["score_ema"]).abs().max() / reference_fixture["expected"]["score_ema"].abs().max()
    assert err < 1e-4


def test_separator_takes_its_settings_from_the_checkpoint(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "fixed.pt", steps=3)
    ck = safe_load(path)
    ck["config"]["loss"]["fixed_order"] = True
    ck["config"]["data"]["sample_rate"] = 16000
    torch.save(ck, path)
    sep = load_separator(str(path), device="cpu")
    assert sep.fixed_order and sep.sample_rate == 16000 and sep.nfe == 6
    assert sep.info["sampler"]["steps"] == 3
    ode = load_separator(str(path), device="cpu", sampler={"kind": "ode", "steps": 4, "solver": "euler"})
    assert ode.nfe == 4 and ode.info["sampler"]["kind"] == "ode"
    with pytest.raises(ValueError, match="unknown rescale"):
        make_separator(load_trained(path), rescale="loudest")
    with pytest.raises(ValueError, match="unknown sampler option"):
        make_separator(load_trained(path), sampler={"stepz": 3})


def test_same_seed_same_output_and_any_input_rate(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", steps=2)
    mix = np.random.default_rng(0).standard_normal(11025).astype(np.float32)
    a = separate_signal(load_separator(str(path), device="cpu", seed=3), mix, 11025, chunk_seconds=0)
    b = separate_signal(load_separator(str(path), device="cpu", seed=3), mix, 11025, chunk_seconds=0)
    assert a.shape == (2, 11025) and np.array_equal(a, b)


def test_chunk_samples():
    assert chunk_samples(0, 5, 8000) == (0, 0)
    assert chunk_samples(2.5, 0.5, 8000) == (20000, 4000)
    for chunk, overlap in ((1.0, 1.0), (1.0, 2.0), (1.0, -0.1), (1e-6, 0)):
        with pytest.raises(ValueError, match="overlap < chunk"):
            chunk_samples(chunk, overlap, 8000)


def test_unknown_checkpoint_format_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="neither a diffsep nor a reference"):
        load_trained({"weights": {}})


class _Sep:
    def __init__(self, fixed_order, n_src=2):
        self.fixed_order, self.n_src = fixed_order, n_src


def test_scoring_follows_the_checkpoint_and_the_layout():
    wsj = [Item("a", Path("m.wav"), (Path("s1.wav"), Path("s2.wav")))]
    vbd = [Item("b", Path("noisy.wav"), (Path("clean.wav"),), noise_from_mix=True)]
    s = dataset_scoring(wsj, _Sep(False))
    assert not s.fixed_order and s.n_scored is None
    s = dataset_scoring(wsj, _Sep(True))  # an enhancement model: its own order, all sources
    assert s.fixed_order and s.n_scored is None
    s = dataset_scoring(vbd, _Sep(False))  # noise derived from the mixture: speech only
    assert s.fixed_order and s.n_scored == 1


def test_warm_started_separator_runs_the_partner_then_refines(tmp_path):
    from diffsep.inference.packaging import save_model as save_checkpoint
    from diffsep.nets.convtasnet import ConvTasNet

    diffsep_ckpt = make_tiny_checkpoint(tmp_path / "d.pt", steps=10)
    torch.manual_seed(0)
    partner = ConvTasNet(n_src=2, N=16, B=8, H=16, X=2, R=1, Sc=8)
    save_checkpoint(tmp_path / "c.pt", partner)
    sep = load_separator(str(diffsep_ckpt), device="cpu", warm_start=str(tmp_path / "c.pt"),
                         sampler={"t_start": 0.3})
    assert sep.nfe == 3 * 2 + 1 and sep.info["warm_start"]["kind"] == "convtasnet"
    assert sep.info["sampler"]["init"] == "model"
    out = sep(torch.randn(2, 1, 3000))
    assert out.shape == (2, 2, 1, 3000) and torch.isfinite(out).all()  # (B, K, C, N)
    with pytest.raises(ValueError, match="needs a warm-start model"):
        load_separator(str(diffsep_ckpt), device="cpu", sampler={"init": "model"})
    with pytest.raises(ValueError, match="warm start needs a model that can start from an estimate"):
        load_separator(str(tmp_path / "c.pt"), device="cpu", warm_start=str(diffsep_ckpt))
