from pathlib import Path

import pytest
import torch

from diffsep.config.build import build_model
from diffsep.config.settings import ConfigError, config_from_dict, load_config, to_dict, to_yaml
from diffsep.nets.score_model import ScoreModel

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load_and_build_their_network(name):
    from diffsep.config.build import build_family

    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.sde.gamma == 2.0 and cfg.loss.t_eps == 0.03
    assert build_family(cfg).kind == cfg.model.kind


@pytest.mark.parametrize("name", ["demucs_musdb", "demucs_tiny", "convtasnet_musdb", "diffsep_musdb"])
def test_music_configs_are_stereo_four_stems_in_a_fixed_order(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert (cfg.model.n_src, cfg.model.audio_channels, cfg.data.kind) == (4, 2, "musdb")
    assert cfg.loss.fixed_order and cfg.data.remix and cfg.data.channel_swap and cfg.data.sign_flip


def test_paper_settings_and_enhancement_settings():
    d = load_config(CONFIGS / "default.yaml")
    assert (d.model.nf, d.model.spec_factor, d.model.spec_abs_exponent) == (128, 0.15, 0.5)
    assert (d.sde.sigma_min, d.sde.sigma_max, d.loss.p_T, d.optim.lr) == (0.05, 0.5, 0.1, 2e-4)
    assert (d.optim.grad_clip, d.optim.ema_decay, d.train.batch_size, d.train.accumulate) == (5.0, 0.999, 6, 2)
    assert (d.data.segment_seconds, d.sampler.steps, d.sampler.snr, d.sampler.corrector_steps) == (5.0, 30, 0.5, 1)
    v = load_config(CONFIGS / "vbdemand.yaml")
    assert v.loss.fixed_order and v.loss.p_T == 0.3 and v.data.sample_rate == 16000
    assert load_config(CONFIGS / "wsj0_3mix.yaml").model.n_src == 3


def test_overrides_are_typed():
    cfg = load_config(CONFIGS / "tiny.yaml", ["train.max_steps=7", "optim.lr=1e-3",
                                               "model.ch_mult=[1,2]", "loss.fixed_order=true"])
    assert cfg.train.max_steps == 7 and cfg.optim.lr == 1e-3
    assert cfg.model.ch_mult == [1, 2] and cfg.loss.fixed_order is True


@pytest.mark.parametrize("override,match", [
    (["train.maxsteps=3"], "unknown key train.maxsteps; valid keys of train: run_dir, max_steps"),
    (["trian.max_steps=3"], "unknown section 'trian'; valid: model, convtasnet, demucs, sde"),
    (["model.nf=abc"], "bad value for model.nf"),
    (["loss.fixed_order=maybe"], "bad value for loss.fixed_order"),
    (["nf=3"], "must look like section.key=value"),
])
def test_bad_overrides_fail_clearly(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, override)


def test_bad_yaml_files_fail_clearly(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  nff: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key model\.nff; valid keys of model: kind, n_src"):
        load_config(p)
    p.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_config_round_trip_rebuilds_the_same_model():
    cfg = load_config(CONFIGS / "tiny.yaml", ["model.n_src=3"])
    again = config_from_dict(to_dict(cfg))
    assert again == cfg
    assert "n_src: 3" in to_yaml(cfg)
    torch.manual_seed(0)
    a, b = build_model(cfg), build_model(again)
    assert isinstance(a, ScoreModel)
    b.load_state_dict(a.state_dict())
    assert a.init_kwargs == b.init_kwargs


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=0", "train.batch_size"), ("train.log_every=0", "train.log_every"),
    ("train.max_steps=-1", "train.max_steps"), ("data.num_workers=-2", "data.num_workers"),
    ("optim.ema_decay=1.5", "optim.ema_decay"), ("optim.lr=0", "optim.lr"),
    ("sde.sigma_min=0.6", "sde.sigma_min"), ("sampler.t_eps=0", "sampler.t_eps"),
    ("convtasnet.X=0", "convtasnet.X"), ("model.audio_channels=0", "model.audio_channels"),
    ("demucs.depth=0", "demucs.depth"), ("loss.waveform=l2", "loss.waveform"),
])
def test_values_no_run_can_use_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(CONFIGS / "tiny.yaml", [override])
    section, name = key.split(".")
    d = to_dict(load_config(CONFIGS / "tiny.yaml"))
    d[section][name] = yaml_value(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):  # also from a checkpoint's config
        config_from_dict(d)


def test_l1_loss_needs_a_fixed_source_order():
    with pytest.raises(ConfigError, match=r"loss\.fixed_order"):
        load_config(CONFIGS / "tiny.yaml", ["loss.waveform=l1"])
    assert load_config(CONFIGS / "tiny.yaml", ["loss.waveform=l1", "loss.fixed_order=true"]).loss.waveform == "l1"


def yaml_value(override: str):
    from omegaconf import OmegaConf

    section, name = override.split("=")[0].split(".")
    return OmegaConf.to_container(OmegaConf.from_dotlist([override]))[section][name]
