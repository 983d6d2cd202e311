"""The time-conditioned Conv-TasNet backbone of DiffSep: shapes, receptive field, FiLM time
conditioning, the data head on it, the family's config / checkpoint plumbing, training steps,
and the backbone bench."""
import inspect
import json
from pathlib import Path

import pytest
import torch

from diffsep.config.build import build_model
from diffsep.config.settings import ConfigError, load_config
from diffsep.core.sde import DiffSepSDE
from diffsep.families import describe
from diffsep.families.diffsep_settings import DiffSepModelSettings
from diffsep.families.preconditioning import Preconditioned
from diffsep.inference.loading import load_trained
from diffsep.nets.spectral_unet import SpectralUNet
from diffsep.nets.tasnet_denoiser import TasNetDenoiser
from diffsep.storage.checkpoint import atomic_save, make_checkpoint
from diffsep.training.trainer import Trainer
from helpers_audio import make_train_cv_tree

ROOT = Path(__file__).parents[1]
SMALL = dict(N=16, L=8, B=8, H=16, P=3, X=3, R=1, Sc=8, emb_dim=8)
SMALL_MODEL = {"backbone": "tasnet", "head": "data", **{f"tasnet_{k}": v for k, v in SMALL.items()}}
SMALL_CFG = [f"model.{k}={v}" for k, v in SMALL_MODEL.items()]


def small(**kw):
    torch.manual_seed(0)
    return TasNetDenoiser(**{**SMALL, **kw})


def perturb_films(net, blocks=None, seed=1):
    """FiLM maps of ``blocks`` (default all) away from their identity init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, lin in enumerate(net.film):
            if blocks is None or i in blocks:
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
                lin.bias.copy_(torch.randn(lin.bias.shape, generator=g))


def inputs(K, N, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(B, K, N, generator=g)
    return x_t, torch.rand(B, generator=g), torch.randn(B, 1, N, generator=g)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("N", [1, 7, 333, 1001])
def test_output_has_the_input_shape_for_any_length(K, N):
    x_t, t, mix = inputs(K, N)
    assert small(n_src=K)(x_t, t, mix).shape == (2, K, N)  # (B, K, N)


def test_bad_shapes_are_refused():
    net = small()
    x_t, t, mix = inputs(2, 100)
    with pytest.raises(ValueError, match=r"x_t must be \(B, 2, N\)"):
        net(x_t[:, :1], t, mix)
    with pytest.raises(ValueError, match=r"mix must be \(B, 1, N\)"):
        net(x_t, t, mix[..., :99])
    with pytest.raises(ValueError, match="even"):
        TasNetDenoiser(L=7)


@pytest.mark.parametrize("P,X,R", [(3, 3, 1), (3, 2, 2), (5, 2, 1)])
def test_receptive_field_in_samples_matches_the_formula(P, X, R):
    """Output sample n0 depends on exactly (receptive field + 2) hops of x_t, centred on it: the
    two frames q = n0 // hop and q + 1 cover it (frame g covers samples [(g − 1) hop, (g + 1) hop)),
    each mask frame sees h = (receptive field − 1) / 2 frames either side (bn in eval mode: no
    coupling across frames). A misaligned crop or padding moves the window."""
    net = small(P=P, X=X, R=R, norm="bn").eval()
    perturb_films(net)
    rf, hop = net.receptive_field, net.stride
    assert rf == 1 + (P - 1) * R * (2 ** X - 1)
    N = 4 * (rf + 2) * hop
    x_t, t, mix = inputs(2, N, B=1)
    x_t.requires_grad_(True)
    n0 = N // 2 + 3
    net(x_t, t, mix)[0, 0, n0].backward()
    nonzero = (x_t.grad[0].abs().sum(0) > 0).nonzero()[:, 0]
    q, h = n0 // hop, (rf - 1) // 2
    assert len(nonzero) == (rf + 2) * hop
    assert (nonzero.min(), nonzero.max()) == ((q - h - 1) * hop, (q + h + 2) * hop - 1)


def test_film_starts_as_identity_and_conditions_every_block_on_t():
    net = small().eval()
    x_t, _, mix = inputs(2, 500)
    t0, t1 = torch.zeros(2), torch.ones(2)
    with torch.no_grad():
        assert torch.equal(net(x_t, t0, mix), net(x_t, t1, mix))  # FiLM at init: scale 0, shift 0
        for block in (0, len(net.blocks) - 1):
            net = small().eval()
            perturb_films(net, blocks={block})
            a, b = net(x_t, t0, mix), net(x_t, t1, mix)  # t = 0 is a valid input
            assert torch.isfinite(a).all() and (a - b).abs().max() > 1e-3, block


def test_divisor_divides_the_output():
    net = small().eval()
    perturb_films(net)
    x_t, t, mix = inputs(2, 300)
    d = torch.tensor([0.5, 4.0])
    with torch.no_grad():
        torch.testing.assert_close(net(x_t, t, mix, divisor=d), net(x_t, t, mix) / d[:, None, None])


@pytest.mark.parametrize("K", [2, 3])
def test_data_head_on_the_tasnet_is_mixture_consistent(K):
    net = small(n_src=K)
    perturb_films(net)
    model = Preconditioned(net, "data", DiffSepSDE(K)).eval()
    x_t, t, mix = inputs(K, 777)
    with torch.no_grad():
        D = model.denoise(x_t, t, mix)
        assert (D.mean(1, keepdim=True) - mix / K).abs().max() < 1e-6
        assert (D - D.mean(1, keepdim=True)).abs().max() > 1e-3  # not just mix / K
        assert torch.isfinite(model(x_t, t, mix)).all()


def test_settings_defaults_are_the_constructor_defaults_and_spectral_unet_stays_the_default():
    model = DiffSepModelSettings()
    for name, p in inspect.signature(TasNetDenoiser).parameters.items():
        if name != "n_src":
            assert getattr(model, f"tasnet_{name}") == p.default, name
    cfg = load_config(None, [])
    assert cfg.model.backbone == "spectral_unet"
    assert describe(build_model(load_config(None, ["model.nf=8", "model.ch_mult=[1,2]", "model.attn_resolutions=[]"])
                                ))["model"]["backbone"] == "spectral_unet"
    with pytest.raises(ConfigError, match="tasnet_L must be even"):
        load_config(None, ["model.backbone=tasnet", "model.tasnet_L=15"])
    with pytest.raises(ConfigError, match="model.backbone must be one of spectral_unet, tasnet"):
        load_config(None, ["model.backbone=wavenet"])


def test_tasnet_backbone_ignores_the_ncsnpp_fields():
    """NCSN++ values no spectral U-Net could take (261 bins that 2 levels cannot halve) do not
    matter to the tasnet backbone."""
    cfg = load_config(None, [*SMALL_CFG, "model.n_fft=520", "model.ch_mult=[1,2]"])
    with pytest.raises(ValueError, match="bins"):
        SpectralUNet(n_fft=520, ch_mult=(1, 2))
    assert type(build_model(cfg).net) is TasNetDenoiser


@pytest.mark.parametrize("K", [2, 3])
def test_checkpoint_round_trip_through_the_family(K, tmp_path):
    cfg = load_config(None, [*SMALL_CFG, f"model.n_src={K}", "model.tasnet_mask_activation=softmax"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert type(model.net) is TasNetDenoiser and model.head == "data" and model.net.n_src == K
    perturb_films(model.net)
    path = tmp_path / "m.pt"
    atomic_save(make_checkpoint(model, config=describe(model)), path)
    trained = load_trained(path)
    m = trained.config.model
    assert (m.backbone, m.head, m.tasnet_N, m.tasnet_mask_activation) == ("tasnet", "data", 16, "softmax")
    assert describe(trained.model) == describe(model)
    x_t, t, mix = inputs(K, 640)
    with torch.no_grad():
        assert torch.equal(trained.model(x_t, t, mix), model(x_t, t, mix))
        assert torch.equal(trained.model.denoise(x_t, t, mix), model.denoise(x_t, t, mix))


def test_a_few_training_steps_of_the_tasnet_config(tmp_path):
    data = make_train_cv_tree(tmp_path / "data", 4)
    cfg = load_config(ROOT / "configs" / "tiny_tasnet_data.yaml", [
        *SMALL_CFG, "data.kind=folder", f"data.root={data}", "data.train_split=tr", "data.valid_split=cv",
        "data.dynamic_mixing=false", "data.speed_perturb=[]", "data.monitor_splits=[]",
        "data.segment_seconds=0.25", "data.num_workers=0", f"train.run_dir={tmp_path / 'run'}",
        "train.max_steps=3", "train.batch_size=2", "train.log_every=1", "train.val_every=0",
        "train.val_batches=1", "train.val_sep_items=1", "sampler.steps=2", "optim.warmup_steps=0"])
    assert Trainer(cfg).run() == 3
    run = tmp_path / "run"
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 3 and all(map(torch.isfinite, torch.tensor(losses)))
    trained = load_trained(run / "last.pt")
    assert type(trained.model.net) is TasNetDenoiser and trained.model.head == "data"
    assert any(lin.weight.abs().max() > 0 for lin in trained.model.net.film)  # FiLM maps were trained


def test_the_shipped_tasnet_config_is_small():
    cfg = load_config(ROOT / "configs" / "tiny_tasnet_data.yaml")
    model = build_model(cfg)
    assert cfg.model.backbone == "tasnet" and cfg.model.head == "data"
    assert 0.8e6 < sum(p.numel() for p in model.parameters()) < 2e6


def test_backbone_bench_prints_ratios_of_interleaved_runs(tmp_path, capsys):
    from diffsep.bench import backbone_speed

    configs = []
    for name, overrides in (("unet", {"nf": 8, "ch_mult": [1, 2], "attn_resolutions": []}), ("tasnet", SMALL_MODEL)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps({"model": overrides}))
        configs.append(str(path))
    calls = []
    times = backbone_speed.interleaved([lambda: calls.append("a"), lambda: calls.append("b")], 2)
    assert calls == ["a", "b"] * 3 and [len(x) for clock in times for x in clock] == [2, 2, 2, 2]
    # threads=None: changing torch's thread count in-process breaks later LU solves (fast_bss_eval)
    args = type("Args", (), dict(configs=configs, seconds=[0.05], fs=8000, batch=1, threads=None,
                                 repeat=1, no_backward=False))()
    assert backbone_speed.run(args) == 0
    out = capsys.readouterr().out
    assert "spectral_unet nf8" in out and "tasnet N16" in out
    assert out.count("(x 1.00)") == 4  # forward and forward+backward, wall and cpu, against [0]


def test_global_layer_norm_is_the_formula_with_its_gain_and_bias():
    """gLN runs as a one-group group norm; it must still be γ (x − mean) / sqrt(var + eps) + β
    with statistics over channels and frames of each item."""
    from diffsep.nets.convtasnet import GlobalLayerNorm

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 50, generator=g, dtype=torch.float64) * 2 + 0.5
    norm = GlobalLayerNorm(6).double()
    with torch.no_grad():
        norm.gamma.copy_(torch.randn(1, 6, 1, generator=g))
        norm.beta.copy_(torch.randn(1, 6, 1, generator=g))
        mean = x.mean((1, 2), keepdim=True)
        want = norm.affine(x, mean, (x - mean).square().mean((1, 2), keepdim=True))
        torch.testing.assert_close(norm(x), want, rtol=1e-10, atol=1e-10)
