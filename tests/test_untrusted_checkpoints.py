"""A checkpoint (and a warm-start partner) is untrusted input: it may come from the Hub. Its names
never lead outside the output folder, its config never makes us allocate more than its weights
justify, a malformed one is one sentence naming the file, an exported model is never taken for
a training state, and a bundled model's name is never shadowed by a file in the working folder."""
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings, strategies as st
from torch.overrides import TorchFunctionMode

from conftest import make_tiny_checkpoint
from diffsep.config import TrainConfig
from diffsep.inference.hub import locate
from diffsep.inference.loading import load_separator, load_trained
from diffsep.inference.packaging import exported, save_model
from diffsep.inference.pretrained import bundled
from diffsep.inference.separator import Separator
from diffsep.nets.convtasnet import ConvTasNet
from diffsep.storage.bounded_build import build_for_weights, requested_elements
from diffsep.storage.checkpoint import CheckpointError, safe_load
from diffsep.storage.names import path_within, plain_name_problem
from diffsep.training.training_state import resume_checkpoint

HOSTILE_NAMES = ["/abs/victim", "../../x", "..", ".", "", "  ", "a/b", "a\\b", "C:\\x", "C:x", "a\nb",
                 "tab\there", "x" * 300]


def one_line_naming(e: BaseException, path) -> str:
    msg = str(e)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def tiny_tasnet(n_src=2, audio_channels=1):
    torch.manual_seed(0)
    return ConvTasNet(n_src=n_src, audio_channels=audio_channels, N=8, B=4, H=8, X=1, R=1, Sc=4)


def music_checkpoint(path: Path, stems) -> Path:
    """A tiny Conv-TasNet music model whose stems (output folders) are ``stems``."""
    save_model(path, tiny_tasnet(len(stems)),
               config={"data": {"kind": "musdb", "stems": list(stems), "sample_rate": 8000}})
    return path


# -- 1. names from a checkpoint ------------------------------------------------------------------
@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_stem_names_that_are_not_plain_file_names_are_refused_when_the_checkpoint_is_read(tmp_path, bad):
    path = music_checkpoint(tmp_path / "music.pt", ["drums", "bass", bad, "vocals"])
    with pytest.raises(CheckpointError) as e:
        load_trained(path)
    assert "data.stems" in one_line_naming(e.value, path)


def test_stem_names_that_would_be_one_file_are_refused(tmp_path):
    path = music_checkpoint(tmp_path / "music.pt", ["drums", "Bass", "bass", "vocals"])
    with pytest.raises(CheckpointError, match="same file name"):
        load_trained(path)


def test_a_checkpoint_cannot_make_separate_write_outside_the_output_folder(tmp_path, capsys):
    from diffsep.cli.separate import main

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "mix.wav").write_bytes(b"precious")
    escape = tmp_path / "out" / ".." / "escaped"
    ckpt = music_checkpoint(tmp_path / "music.pt", [str(victim), "../escaped", "other", "vocals"])
    sf.write(tmp_path / "mix.wav", np.random.default_rng(0).normal(0, 0.1, 4000).astype("float32"), 8000)
    assert main([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--quiet"]) == 2
    assert (victim / "mix.wav").read_bytes() == b"precious" and not escape.exists()
    err = capsys.readouterr().err.strip()
    assert str(ckpt) in err and "data.stems" in err and len(err.splitlines()) == 1


def test_a_separator_refuses_source_names_that_are_not_plain(tmp_path):
    with pytest.raises(ValueError, match="not a plain file name"):
        Separator(lambda mix, gen: mix[:, None], 2, 8000, stems=("voice", "../rest"))
    with pytest.raises(ValueError, match="2 names"):
        Separator(lambda mix, gen: mix[:, None], 3, 8000, stems=("voice", "rest"))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=12))
def test_a_plain_name_stays_one_component_inside_its_folder(name):
    folder = Path("out") / "dir"  # path arithmetic only: nothing is written
    if plain_name_problem(name) is None:
        p = path_within(folder, name, "song.wav")
        assert p.parent.parent == folder and p.parent.name == name
        assert Path(os.path.normpath(p)).parent.parent == folder  # no '..' anywhere
    if any(c in name for c in "/\\") or name.strip() in ("", ".", "..") or any(ord(c) < 32 for c in name):
        assert plain_name_problem(name) is not None


@pytest.mark.parametrize("part", ["/etc", "../x", "a/../../x", "..\\x", "C:\\x"])
def test_output_paths_never_leave_the_output_folder(tmp_path, part):
    with pytest.raises(ValueError, match="would leave the output folder"):
        path_within(tmp_path, part, "song.wav")
    assert path_within(tmp_path, "sub/dir", "song.wav") == tmp_path / "sub" / "dir" / "song.wav"


# -- 2. memory: the config is checked against the weights before anything big is allocated -----
class FactoryRecorder(TorchFunctionMode):
    """Counts the elements of every tensor a factory function (empty, zeros, randn ...) creates in
    memory (not on the meta device)."""
    NAMES = {"empty", "zeros", "ones", "rand", "randn", "full", "empty_strided", "new_empty", "new_zeros",
             "new_ones", "new_full"}

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in self.NAMES and isinstance(out, torch.Tensor) and not out.is_meta:
            self.elements += out.numel()
        return out


def widened(tmp_path, **model) -> Path:
    path = make_tiny_checkpoint(tmp_path / "tiny.pt")
    ck = safe_load(path)
    ck["config"]["model"].update(model)
    torch.save(ck, path)
    return path


@pytest.mark.parametrize("change", [{"nf": 512}, {"nf": 100_000}, {"num_res_blocks": 10 ** 6}])
def test_a_config_larger_than_its_weights_is_refused_without_building_the_network(tmp_path, change):
    path = widened(tmp_path, **change)  # weights of nf=8, one block per level (48 k values)
    with FactoryRecorder() as rec, pytest.raises(CheckpointError) as e:
        load_trained(path)
    assert "larger than the weights" in one_line_naming(e.value, path)
    assert rec.elements < 20_000_000  # this network holds 183 M values at nf=512, 80 G at nf=100000


@pytest.mark.parametrize("section, key, value", [("data", "sample_rate", 100_000_000), ("data", "sample_rate", 10),
                                                 ("model", "n_src", 50), ("model", "audio_channels", 1000),
                                                 ("model", "n_fft", 10 ** 7)])
def test_implausible_config_values_are_refused_in_one_sentence(tmp_path, section, key, value):
    path = make_tiny_checkpoint(tmp_path / "tiny.pt")
    ck = safe_load(path)
    ck["config"].setdefault(section, {})[key] = value
    torch.save(ck, path)
    with pytest.raises(CheckpointError) as e:
        load_trained(path)
    assert f"{section}.{key}" in one_line_naming(e.value, path)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["convtasnet", "demucs", "diffsep"]), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1000))
def test_an_honest_network_is_built_within_its_allowance(kind, width, channels, seed):
    from diffsep.config import config_from_dict
    from diffsep.config.build import build_family

    sections = {"convtasnet": {"convtasnet": {"N": 8 * width, "B": 4 * width, "H": 8 * width, "X": 2, "R": 1, "Sc": 4}},
                "demucs": {"demucs": {"channels": 4 * width, "depth": 2, "lstm_layers": 1}},
                "diffsep": {"model": {"nf": 4 * width, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": []}}}
    d = {**sections[kind], "model": {**sections[kind].get("model", {}), "kind": kind, "audio_channels": channels}}
    family = build_family(config_from_dict(d))
    torch.manual_seed(seed)
    weights = family.build_model().state_dict()
    model = build_for_weights(family.build_model, weights, "honest.pt")
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in weights.items()}


def test_requested_sizes_are_read_before_allocation():
    t = torch.empty(1)
    assert requested_elements(torch.empty, (3, 4), {}) == 12
    assert requested_elements(torch.empty, ((3, 4),), {}) == 12
    assert requested_elements(torch.zeros, (), {"size": (2, 5)}) == 10
    assert requested_elements(torch.full, ((2, 3), 1.0), {}) == 6
    assert requested_elements(torch.Tensor.new_empty, (t, (7,)), {}) == 7
    assert requested_elements(torch.Tensor.new_zeros, (t, 2, 2), {}) == 4
    assert requested_elements(torch.add, (t, t), {}) is None


@pytest.mark.parametrize("change", ["config list", "weights list", "weights value", "weights key", "ema str"])
def test_a_malformed_checkpoint_is_one_sentence_naming_the_file(tmp_path, change):
    path = make_tiny_checkpoint(tmp_path / "bad.pt")
    ck = safe_load(path)
    first = next(iter(ck["model"]))
    if change == "config list":
        ck["config"] = ["model", "data"]
    elif change == "weights list":
        ck["model"], ck["ema"] = [1, 2], None
    elif change == "weights value":
        ck["ema"][first] = 3.0
    elif change == "weights key":
        ck["ema"][7] = ck["ema"].pop(first)
    else:
        ck["ema"] = "weights"
    torch.save(ck, path)
    with pytest.raises(CheckpointError) as e:
        load_trained(path)
    one_line_naming(e.value, path)


@pytest.mark.parametrize("key, value, says", [("d_lambda", "steep", "cannot be read"), ("nf", 100_000, "larger than"),
                                               ("fs", 10 ** 8, "data.sample_rate")])
def test_a_tampered_reference_checkpoint_is_one_sentence_naming_the_file(reference_fixture, tmp_path, key, value, says):
    import copy

    from omegaconf import DictConfig, OmegaConf

    ck = copy.deepcopy(reference_fixture["checkpoint"])
    cfg = ck["hyper_parameters"]["config"]
    cfg = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    m = cfg["model"]
    {"d_lambda": m["sde"], "nf": m["score_model"]["backbone_args"], "fs": m}[key][key] = value
    ck["hyper_parameters"]["config"] = cfg
    path = tmp_path / "reference.pt"
    torch.save(ck, path)
    with FactoryRecorder() as rec, pytest.raises(CheckpointError) as e:
        load_trained(path)
    assert says in one_line_naming(e.value, path) and rec.elements < 20_000_000


# -- 5. export and resume ------------------------------------------------------------------------
def training_checkpoint_file(path: Path) -> Path:
    make_tiny_checkpoint(path)
    ck = safe_load(path)
    ck.update(optimizer={"state": {}, "param_groups": []}, scaler={}, rng={"torch": torch.get_rng_state()},
              ema_n_averaged=3, epoch=0, batch_in_epoch=2, best=-1.0, step=2)
    torch.save(ck, path)
    return path


@pytest.mark.parametrize("how", ["same name", "relative", "symlink", "hard link"])
def test_export_refuses_to_write_over_the_checkpoint_it_reads(tmp_path, monkeypatch, capsys, how):
    from diffsep.cli.export import main

    src = training_checkpoint_file(tmp_path / "last.pt")
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    if how == "symlink":
        os.symlink(src, tmp_path / "link.pt")
    elif how == "hard link":
        os.link(src, tmp_path / "link.pt")
    out = {"same name": str(src), "relative": "sub/../last.pt"}.get(how, "link.pt")
    assert main([str(src), out]) == 2
    assert src.read_bytes() == before
    err = capsys.readouterr().err.strip()
    assert "another file" in err and len(err.splitlines()) == 1


def test_an_exported_model_cannot_be_resumed_and_says_to_use_init_from(tmp_path):
    exp = tmp_path / "model.pt"
    torch.save(exported(safe_load(training_checkpoint_file(tmp_path / "last.pt"))), exp)
    with pytest.raises(CheckpointError) as e:
        resume_checkpoint(TrainConfig(resume=str(exp)), tmp_path / "run")
    assert "cannot be resumed" in one_line_naming(e.value, exp) and f"train.init_from={exp}" in str(e.value)
    ref = tmp_path / "ref.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, ref)
    with pytest.raises(CheckpointError, match="not a diffsep training checkpoint"):
        resume_checkpoint(TrainConfig(resume=str(ref)), tmp_path / "run")


def test_auto_resume_passes_over_an_exported_last_pt_to_the_newest_training_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    step = training_checkpoint_file(run / "step_00000002.pt")
    torch.save(exported(safe_load(step)), run / "last.pt")
    path, ckpt = resume_checkpoint(TrainConfig(resume="auto"), run)
    assert path == step and ckpt["optimizer"] is not None
    assert "cannot be resumed" in capsys.readouterr().err
    step.unlink()
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        resume_checkpoint(TrainConfig(resume="auto"), run)


# -- 9. warm-start partners ----------------------------------------------------------------------
@pytest.mark.parametrize("partner, what", [({"rate": 16000}, "sample rate"), ({"channels": 2}, "audio channels"),
                                           ({"n_src": 3}, "number of sources")])
def test_a_warm_start_partner_must_match_rate_channels_and_sources(tmp_path, partner, what):
    model = make_tiny_checkpoint(tmp_path / "d.pt")
    path = tmp_path / "partner.pt"
    save_model(path, tiny_tasnet(partner.get("n_src", 2), partner.get("channels", 1)),
               config={"data": {"sample_rate": partner.get("rate", 8000)}})
    with pytest.raises(ValueError) as e:
        load_separator(str(model), device="cpu", warm_start=str(path), sampler={"t_start": 0.3})
    assert what in one_line_naming(e.value, path)


def test_a_bundled_name_is_the_bundled_model_even_with_a_file_of_that_name_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "convtasnet-small"
    save_model(tmp_path / name, tiny_tasnet(), config={"data": {"sample_rate": 16000}})  # a shadowing file
    assert locate(name).path == bundled(name).path and locate(name).bundled is not None
    own = locate(f"./{name}")
    assert own.bundled is None and own.path.resolve() == (tmp_path / name).resolve()
    assert locate(tmp_path / name).bundled is None  # a Path is a path
    sep = load_separator("diffsep-small", device="cpu", sampler={"steps": 2})  # its bundled partner, not the file
    assert sep.info["warm_start"]["kind"] == "convtasnet"
