from pathlib import Path

import pytest
import torch

from diffsep.config.build import build_model
from diffsep.config.settings import ConfigError, config_from_dict, load_config, to_dict, to_yaml
from diffsep.families import FAMILIES

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load_and_build_their_network(name):
    from diffsep.config.build import build_family

    cfg = load_config(CONFIGS / f"{name}.yaml")
    if cfg.model.kind == "diffsep":
        assert cfg.sde.gamma == 2.0 and cfg.loss.t_eps == 0.03
    assert build_family(cfg).kind == cfg.model.kind
    assert {f for f in cfg.__dataclass_fields__} == {*FAMILIES[cfg.model.kind].sections, "data", "optim", "train"}


@pytest.mark.parametrize("name", ["convtasnet_tiny", "convtasnet_wsj0_2mix", "demucs_tiny", "demucs_musdb"])
def test_discriminative_configs_hold_no_diffsep_section(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert not {"sde", "sampler"} & set(cfg.__dataclass_fields__)
    assert not hasattr(cfg.model, "nf") and not hasattr(cfg.loss, "p_T")
    with pytest.raises(ConfigError, match="section 'sde' belongs to model.kind diffsep, not"):
        load_config(CONFIGS / f"{name}.yaml", ["sde.gamma=3"])
    with pytest.raises(ConfigError, match=r"unknown key model\.nf for model\.kind"):
        load_config(CONFIGS / f"{name}.yaml", ["model.nf=3"])


def test_value_checks_come_from_field_metadata():
    """Every numeric field of a section with a range in its metadata is refused outside it."""
    from dataclasses import fields

    from diffsep.config.settings import check_values

    cfg = load_config(CONFIGS / "tiny.yaml")
    checked = 0
    for section in fields(cfg):
        values = getattr(cfg, section.name)
        for f in fields(values):
            meta = f.metadata
            bad = (meta["min"] - 1 if "min" in meta else meta["gt"] if "gt" in meta
                   else meta["range"][1] + 1 if "range" in meta else None)
            if bad is None:
                continue
            old = getattr(values, f.name)
            setattr(values, f.name, type(old)(bad))
            with pytest.raises(ConfigError, match=f"{section.name}\\.{f.name} must be"):
                check_values(cfg)
            setattr(values, f.name, old)
            checked += 1
    assert checked >= 25


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
    (["train.maxsteps=3"], "unknown key train.maxsteps for model.kind diffsep; valid keys of train: run_dir, max_steps"),
    (["trian.max_steps=3"], "unknown section 'trian'; valid: model, loss, data, optim, train, sde, sampler"),
    (["model.kind=wavenet"], "unknown model.kind 'wavenet'; valid: diffsep, convtasnet, demucs"),
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
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key model\.nff for model\.kind diffsep; valid keys of model: kind, n_src"):
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
    assert isinstance(a, FAMILIES["diffsep"].model_class)
    b.load_state_dict(a.state_dict())
    assert a.net.init_kwargs == b.net.init_kwargs and a.head == b.head


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=0", "train.batch_size"), ("train.log_every=0", "train.log_every"),
    ("train.max_steps=-1", "train.max_steps"), ("data.num_workers=-2", "data.num_workers"),
    ("optim.ema_decay=1.5", "optim.ema_decay"), ("optim.lr=0", "optim.lr"),
    ("sde.sigma_min=0.6", "sde.sigma_min"), ("sampler.t_eps=0", "sampler.t_eps"),
    ("convtasnet.X=0", "convtasnet.X"), ("model.audio_channels=0", "model.audio_channels"),
    ("demucs.depth=0", "demucs.depth"), ("loss.waveform=l2", "loss.waveform"),
])
def test_values_no_run_can_use_are_refused_naming_the_key(override, key):
    base = {"convtasnet": "convtasnet_tiny.yaml", "demucs": "demucs_tiny.yaml"}.get(key.split(".")[0], "tiny.yaml")
    base = "convtasnet_tiny.yaml" if key == "loss.waveform" else base
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(CONFIGS / base, [override])
    section, name = key.split(".")
    d = to_dict(load_config(CONFIGS / base))
    d[section][name] = yaml_value(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):  # also from a checkpoint's config
        config_from_dict(d)


def test_l1_loss_needs_a_fixed_source_order():
    with pytest.raises(ConfigError, match=r"loss\.fixed_order"):
        load_config(CONFIGS / "convtasnet_tiny.yaml", ["loss.waveform=l1"])
    cfg = load_config(CONFIGS / "convtasnet_tiny.yaml", ["loss.waveform=l1", "loss.fixed_order=true"])
    assert cfg.loss.waveform == "l1"


def test_a_checkpoint_config_of_the_all_sections_era_still_loads():
    """Checkpoints once held every family's sections: those of other families are dropped."""
    d = to_dict(load_config(CONFIGS / "convtasnet_tiny.yaml"))
    d["sde"] = {"gamma": 2.0}
    d["sampler"] = {"steps": 30}
    d["model"]["nf"] = 128
    d["loss"]["p_T"] = 0.1
    cfg = config_from_dict(d)
    assert cfg == load_config(CONFIGS / "convtasnet_tiny.yaml")
    d["model"]["bogus"] = 1
    with pytest.raises(ConfigError, match=r"model\.bogus"):
        config_from_dict(d)


def yaml_value(override: str):
    from omegaconf import OmegaConf

    section, name = override.split("=")[0].split(".")
    return OmegaConf.to_container(OmegaConf.from_dotlist([override]))[section][name]
