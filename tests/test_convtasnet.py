"""Conv-TasNet: shapes, receptive field, norms, PIT loss, training, separation through the CLIs."""
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from conftest import speech_like
from diffsep.config.settings import load_config
from diffsep.nets.convtasnet import ConvTasNet, CumulativeLayerNorm, GlobalLayerNorm
from diffsep.families.waveform_losses import pit_si_snr_loss
from diffsep.core.sdr import si_sdr
from diffsep.training.trainer import Trainer
from helpers_audio import make_mix_tree

ROOT = Path(__file__).parents[1]


def small(**kw):
    args = dict(N=32, L=8, B=16, H=32, P=3, X=3, R=2, Sc=16)
    return ConvTasNet(**{**args, **kw})


def test_paper_configuration_parameter_count():
    n = sum(p.numel() for p in ConvTasNet().parameters())
    assert 5.0e6 < n < 5.2e6  # the paper: about 5.1 M
    assert n == 5_050_545


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("T", [1, 7, 1001, 4000])
def test_output_shapes(K, T):
    m = small(n_src=K)
    assert m(torch.randn(3, 1, T)).shape == (3, K, 1, T)  # (B, C, T) -> (B, K, C, T)
    with pytest.raises(ValueError, match=r"mix must be \(B, 1, T\)"):
        m(torch.randn(2, T))


@pytest.mark.parametrize("P,X,R", [(3, 3, 2), (3, 4, 1), (5, 2, 3)])
@pytest.mark.parametrize("causal", [False, True])
def test_receptive_field_matches_the_formula(P, X, R, causal):
    torch.manual_seed(0)
    m = small(P=P, X=X, R=R, norm="bn", causal=causal).eval()  # bn (eval): no coupling across frames
    assert m.receptive_field == 1 + (P - 1) * R * (2 ** X - 1)
    F, f0 = 3 * m.receptive_field, 3 * m.receptive_field // 2
    w = torch.rand(1, 32, F, requires_grad=True)
    m.masks(w)[..., f0].sum().backward()
    frames = (w.grad.abs().sum(1)[0] > 0).nonzero()[:, 0]
    assert len(frames) == m.receptive_field
    assert frames.max() - frames.min() + 1 == m.receptive_field
    if causal:
        assert frames.max() == f0


def test_causal_model_ignores_the_future():
    torch.manual_seed(0)
    m = small(norm="cln", causal=True).eval()
    x = torch.randn(1, 1, 800)
    y = x.clone()
    y[..., 600:] = torch.randn(200)
    a, b = m(x), m(y)
    torch.testing.assert_close(a[..., :590], b[..., :590])
    assert not torch.allclose(a[..., 610:], b[..., 610:])
    with pytest.raises(ValueError, match="cln"):
        small(norm="gln", causal=True)


def test_layer_norms():
    x = torch.randn(2, 5, 40) * 3 + 1
    g = GlobalLayerNorm(5)(x)
    torch.testing.assert_close(g.mean((1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.var((1, 2), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    c = CumulativeLayerNorm(5)(x)
    for f in (0, 10, 39):  # frame f is normalised with the statistics of frames 0..f
        part = x[..., :f + 1]
        mu, var = part.mean((1, 2), keepdim=True), part.var((1, 2), unbiased=False, keepdim=True)
        torch.testing.assert_close(c[..., f], ((x[..., f:f + 1] - mu) / (var + 1e-8).sqrt())[..., 0],
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mask_activation", ["sigmoid", "softmax", "relu"])
def test_mask_activations(mask_activation):
    m = small(mask_activation=mask_activation, n_src=3)
    masks = m.masks(torch.rand(2, 32, 20))
    assert (masks >= 0).all()
    if mask_activation == "softmax":
        torch.testing.assert_close(masks.sum(1), torch.ones(2, 32, 20))
    if mask_activation == "sigmoid":
        assert (masks <= 1).all()


def test_pit_loss_is_permutation_invariant_and_picks_the_right_one():
    sources = speech_like(3, 2000, seed=2, dtype=torch.float32).expand(2, 3, 2000).clone()
    est = sources + 0.1 * torch.randn(sources.shape, generator=torch.Generator().manual_seed(0))
    base = pit_si_snr_loss(est, sources)
    for perm in ([1, 0, 2], [2, 0, 1], [2, 1, 0]):
        torch.testing.assert_close(pit_si_snr_loss(est, sources[:, perm]), base)
        torch.testing.assert_close(pit_si_snr_loss(est[:, perm], sources), base)
    torch.testing.assert_close(base, -si_sdr(est, sources).mean(-1))  # the right matching
    est.requires_grad_(True)
    pit_si_snr_loss(est, sources[:, [2, 0, 1]]).sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0


def ct_cfg(data_root, run_dir, *extra):
    return load_config(ROOT / "configs" / "convtasnet_tiny.yaml", [
        "data.kind=folder", f"data.root={data_root}", "data.train_split=tr", "data.valid_split=cv",
        "data.segment_seconds=0.25", "data.num_workers=0", "convtasnet.N=32", "convtasnet.B=16",
        "convtasnet.H=32", "convtasnet.X=3", "convtasnet.R=1", "convtasnet.Sc=16",
        f"train.run_dir={run_dir}", "train.batch_size=2", "train.log_every=1", "train.ckpt_every=1",
        "train.val_batches=1", "train.val_sep_items=1", *extra])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_mix_tree(root / "tr", 6, n=2500)
    make_mix_tree(root / "cv", 2, n=2500, seed=1)
    make_mix_tree(root / "tt", 2, n=3000, seed=2)
    return root


@pytest.mark.slow
def test_training_resume_plateau_schedule_and_separation_through_the_clis(data_root, tmp_path):
    from diffsep.storage.checkpoint import safe_load
    from diffsep.inference.loading import load_model
    from diffsep.cli.evaluate import main as evaluate
    from diffsep.cli.separate import main as separate

    run = tmp_path / "run"
    # 6 items in batches of 2: 3 steps per epoch; validation at every epoch end and at the last
    # step; with patience 0 the lr halves after every validation that does not improve
    extra = ["train.val_every_epochs=1", "optim.lr_patience=0", "optim.lr=1e-6"]
    assert Trainer(ct_cfg(data_root, run, "train.max_steps=2", *extra)).run() == 2
    ck = safe_load(run / "last.pt")
    assert ck["config"]["model"]["kind"] == "convtasnet" and ck["scheduler"] is not None
    assert isinstance(load_model(run / "last.pt"), ConvTasNet)
    tr = Trainer(ct_cfg(data_root, run, "train.max_steps=4", *extra))
    assert tr.run() == 4
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "val_si_sdr" in r] == [2, 3, 4]
    lrs = [r["lr"] for r in recs if "lr" in r]
    assert lrs[-1] < lrs[0]  # the plateau schedule reduced the lr, and it survived the resume

    sf.write(tmp_path / "long.wav", speech_like(1, 20000, dtype=torch.float32)[0, 0].numpy() * 0.3, 8000)
    out = tmp_path / "sep"
    assert separate([str(tmp_path / "long.wav"), "-o", str(out), "--model", str(run / "last.pt"),
                     "--chunk-seconds", "1", "--overlap-seconds", "0.2", "--quiet"]) == 0
    assert sf.info(out / "s2" / "long.wav").frames == 20000
    res = tmp_path / "eval"
    assert evaluate(["--model", str(run / "last.pt"), "--data-root", str(data_root), "--dataset", "folder",
                     "--split", "tt", "--out", str(res), "--jobs", "0", "--quiet"]) == 0
    summary = json.loads((res / "summary.json").read_text())
    assert summary["si_sdr"]["count"] == 2 and summary["info"]["nfe"] == 1
