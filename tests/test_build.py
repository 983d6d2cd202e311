"""One assembly path: the family registry, config -> objects, and checkpoints of bare networks."""
import inspect
from dataclasses import asdict

import pytest
import torch

from diffsep.config.build import build_family, build_model
from diffsep.training.optimization import build_optimizer, build_scheduler
from diffsep.families import describe as config_of
from diffsep.storage.checkpoint import make_checkpoint
from diffsep.config.settings import ConfigError, config_from_dict, load_config
from diffsep.families.diffsep_settings import DiffSepModelSettings as ModelConfig
from diffsep.families.discriminative import ConvTasNetSettings as ConvTasNetConfig
from diffsep.families.discriminative import DemucsSettings as DemucsConfig
from diffsep.nets.convtasnet import ConvTasNet
from diffsep.nets.demucs import Demucs
from diffsep.families import FAMILIES
from diffsep.inference.loading import load_trained
from diffsep.core.normalization import normalize
from diffsep.nets.spectral_unet import SpectralUNet

SMALL = {"diffsep": ["model.nf=8", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
                     "model.attn_resolutions=[]", "model.init_scale=1.0", "sampler.steps=2"],
         "convtasnet": ["convtasnet.N=16", "convtasnet.B=8", "convtasnet.H=16", "convtasnet.X=2",
                        "convtasnet.R=1", "convtasnet.Sc=8"],
         "demucs": ["demucs.channels=4", "demucs.depth=2", "demucs.lstm_layers=1"],
         "bridge": ["model.backbone=tasnet", "model.tasnet_N=16", "model.tasnet_B=8", "model.tasnet_H=16",
                    "model.tasnet_X=2", "model.tasnet_R=1", "model.tasnet_Sc=8", "sampler.steps=2"]}


def small_config(kind):
    return load_config(None, [f"model.kind={kind}", *SMALL[kind]])


def _defaults(cls, skip=()):
    return {k: p.default for k, p in inspect.signature(cls).parameters.items() if k not in skip}


def test_config_defaults_are_the_network_defaults():
    """Defaults are written twice (the config section and the constructor); they must agree."""
    model = asdict(ModelConfig())
    for key, value in _defaults(SpectralUNet).items():
        assert tuple(model[key]) == value if isinstance(value, tuple) else model[key] == value, key
    assert _defaults(ConvTasNet, skip=("n_src", "audio_channels")) == asdict(ConvTasNetConfig())
    assert _defaults(Demucs, skip=("n_src", "audio_channels")) == asdict(DemucsConfig())


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_every_family_rebuilds_from_its_checkpoint_and_estimates_the_same(kind):
    cfg = small_config(kind)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert isinstance(model, FAMILIES[kind].model_class)
    sampler = {"sampler": asdict(cfg.sampler)} if hasattr(cfg, "sampler") else {}
    trained = load_trained(make_checkpoint(model, config={**config_of(model), **sampler}))
    assert type(trained.model) is type(model) and config_of(trained.model) == config_of(model)
    assert trained.config.model.kind == kind
    family = build_family(trained.config)
    mix = normalize(torch.randn(2, 1, 1200, generator=torch.Generator().manual_seed(1)))[0]
    a = family.estimate(model, mix, torch.Generator().manual_seed(2))
    b = family.estimate(trained.model, mix, torch.Generator().manual_seed(2))
    assert a.shape == (2, 2, 1, 1200) and torch.equal(a, b)  # (B, K, C, N)
    assert family.nfe == {"diffsep": 4, "bridge": 2}.get(kind, 1)  # pc: 2 steps, 1 corrector step each


@pytest.mark.parametrize("kind", ["demucs", "diffsep", "convtasnet"])
@pytest.mark.parametrize("K", [2, 4])
def test_stereo_families_map_stereo_mixtures_to_stereo_stems(kind, K):
    cfg = load_config(None, [f"model.kind={kind}", "model.audio_channels=2", f"model.n_src={K}", *SMALL[kind],
                             "loss.fixed_order=true"] + (["loss.waveform=l1"] if kind == "convtasnet" else []))
    torch.manual_seed(0)
    family, model = build_family(cfg), build_model(cfg)
    sources = torch.randn(3, K, 2, 999)
    mix, sources, _, _ = normalize(sources.sum(1), sources)
    assert family.estimate(model, mix, torch.Generator().manual_seed(0)).shape == (3, K, 2, 999)
    draws = family.draw((4, *sources.shape[1:]), torch.Generator())  # a global batch of 4, this rank's 3
    draws = None if draws is None else draws.slice(1, 4)
    loss = family.loss(model, mix, sources, draws)
    assert loss.shape == (3,) and torch.isfinite(loss).all()


def test_diffsep_separates_the_channels_of_a_stereo_mixture_as_mono_items():
    cfg = load_config(None, ["model.audio_channels=2", *SMALL["diffsep"]])
    torch.manual_seed(0)
    family, model = build_family(cfg), build_model(cfg).eval()
    mix = normalize(torch.randn(2, 2, 800))[0]
    stereo = family.estimate(model, mix, torch.Generator().manual_seed(5))
    mono = family.estimate(model, mix.reshape(4, 1, 800), torch.Generator().manual_seed(5))  # (4, 2, 1, 800)
    torch.testing.assert_close(stereo, mono.view(2, 2, 2, 800).transpose(1, 2))


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_every_family_loss_is_per_item_and_trains(kind):
    cfg = small_config(kind)
    torch.manual_seed(0)
    family, model = build_family(cfg), build_model(cfg)
    g = torch.Generator().manual_seed(0)
    sources = torch.randn(3, 2, 1, 1200, generator=g)  # (B, K, C, N)
    mix, sources, _, _ = normalize(sources.sum(1), sources)
    draws = family.draw(sources.shape, g)
    if draws is not None:  # the draws of a global batch slice into per-rank parts
        draws = draws.slice(0, 3)
    loss = family.loss(model, mix, sources, draws)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_unknown_family_and_schedule_name_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: diffsep, convtasnet, demucs"):
        build_family(load_config(None, ["model.kind=wavenet"]))
    with pytest.raises(ConfigError, match="optim.lr_schedule must be one of none, plateau, cosine"):
        load_config(None, ["optim.lr_schedule=linear"])
    cfg = load_config(None)
    cfg.optim.lr_schedule = "linear"  # past the config checks: the schedule builder refuses it too
    with pytest.raises(ConfigError, match="valid: none, plateau, cosine"):
        build_scheduler(cfg, build_optimizer(cfg, torch.nn.Linear(1, 1)))
    with pytest.raises(TypeError, match="no model family"):
        config_of(torch.nn.Linear(1, 1))


def test_checkpoint_config_of_a_bare_network_fills_the_rest_with_defaults():
    torch.manual_seed(0)
    net = ConvTasNet(n_src=3, N=16, B=8, H=16, X=2, R=1, Sc=8)
    ckpt = make_checkpoint(net, config=config_of(net))
    cfg = config_from_dict(ckpt["config"])
    assert cfg.model.kind == "convtasnet" and cfg.model.n_src == 3 and cfg.convtasnet.N == 16
    assert cfg.data.sample_rate == 8000  # the default lives in config.py only
