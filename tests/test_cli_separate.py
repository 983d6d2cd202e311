"""separate.py end to end: folders, bad inputs, resampling, chunking, skip/overwrite, models."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.cli.separate import collect_inputs, main

ROOT = Path(__file__).resolve().parents[1]


def voice(n, sr=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.2 * np.sin(2 * np.pi * 310 * t + 1)
            + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture
def bad_folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", voice(4000), 8000, subtype="PCM_16")
    sf.write(d / "rate16k.flac", voice(8000, 16000), 16000)
    sf.write(d / "stereo.wav", np.stack([voice(4000), voice(4000, seed=1)], 1), 8000)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 8000)
    sf.write(d / "silent.wav", np.zeros(4000, np.float32), 8000)
    sf.write(d / "one_sample.wav", np.ones(1, np.float32) * 0.1, 8000)
    nan = voice(4000)
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, 8000, subtype="FLOAT")
    sf.write(d / "full.wav", voice(4000), 8000, subtype="PCM_16")
    raw = (d / "full.wav").read_bytes()
    (d / "truncated.wav").write_bytes(raw[:len(raw) // 2])
    (d / "full.wav").unlink()
    (d / "notaudio.wav").write_text("this is not audio\n")
    return d


def test_bad_inputs_are_reported_and_the_rest_completes(bad_folder, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    rc = main([str(bad_folder), str(bad_folder / "missing.wav"), "-o", str(out),
               "--model", str(tiny_checkpoint), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    expected = {"empty.wav": "empty", "silent.wav": "silence", "one_sample.wav": "too short",
                "nan.wav": "NaN", "truncated.wav": "truncated", "notaudio.wav": "unreadable",
                "stereo.wav": "channels", "missing.wav": "no such file"}
    failed = [ln for ln in err.splitlines() if ln.strip().startswith("failed:")]
    assert len(failed) == len(expected)
    for name, reason in expected.items():
        assert any(name in ln and reason in ln for ln in failed), (name, failed)
    for k in (1, 2):
        assert sf.info(out / f"s{k}" / "good.wav").frames == 4000
        info = sf.info(out / f"s{k}" / "rate16k.wav")  # written back at the input's rate
        assert (info.samplerate, info.frames) == (16000, 8000)
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == ["good.wav", "good.wav", "rate16k.wav", "rate16k.wav"]  # no temporaries left


def test_skip_existing_overwrite_and_downmix(bad_folder, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    args = [str(bad_folder / "good.wav"), str(bad_folder / "stereo.wav"), "-o", str(out),
            "--model", str(tiny_checkpoint), "--device", "cpu", "--quiet", "--downmix"]
    assert main(args) == 0
    target = out / "s1" / "good.wav"
    first = target.read_bytes()
    os.utime(target, (1, 1))
    assert main(args) == 0 and target.stat().st_mtime == 1  # skipped
    assert "2 already done" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    assert target.stat().st_mtime != 1 and target.read_bytes() != first
    assert sf.info(out / "s2" / "stereo.wav").frames == 4000


def test_long_input_in_chunks_keeps_its_length(tmp_path, tiny_checkpoint):
    sf.write(tmp_path / "long.wav", voice(8000 * 3 + 17), 8000)
    out = tmp_path / "out"
    assert main([str(tmp_path / "long.wav"), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--chunk-seconds", "1", "--overlap-seconds", "0.25", "--batch-size", "2",
                 "--quiet", "--device", "cpu", "--format", "flac", "--output-rate", "model"]) == 0
    x, sr = sf.read(out / "s2" / "long.flac")
    assert sr == 8000 and len(x) == 8000 * 3 + 17 and np.isfinite(x).all() and np.abs(x).max() > 0


def test_inputs_from_folders_globs_and_recursion(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for p in ("a/x.wav", "a/sub/y.flac", "a/notes.txt"):
        (tmp_path / p).write_bytes(b"")
    names = lambda jobs: sorted(j.name for j in jobs)  # noqa: E731
    assert names(collect_inputs([str(tmp_path / "a")])) == ["x"]
    assert names(collect_inputs([str(tmp_path / "a")], recursive=True)) == ["sub/y", "x"]
    assert names(collect_inputs([str(tmp_path / "a" / "**" / "*.flac")])) == ["y"]
    assert len(collect_inputs([str(tmp_path / "a"), str(tmp_path / "a" / "x.wav")])) == 1


def test_reference_checkpoint_separates_through_model_option(tmp_path, reference_fixture):
    ckpt = tmp_path / "epoch=0-step=0.ckpt"  # a reference (Lightning) checkpoint file
    torch.save(reference_fixture["checkpoint"], ckpt)
    sf.write(tmp_path / "mix.wav", voice(6000), 8000)
    out = tmp_path / "out"
    assert main([str(tmp_path / "mix.wav"), "-o", str(out), "--model", str(ckpt),
                 "--steps", "2", "--device", "cpu", "--quiet"]) == 0
    for k in (1, 2):
        x, sr = sf.read(out / f"s{k}" / "mix.wav")
        assert sr == 8000 and len(x) == 6000 and np.isfinite(x).all()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    sf.write(tmp_path / "mix.wav", voice(4000), 8000)
    assert main([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "not a readable PyTorch checkpoint" in err


def _run_separate(args, env):
    return subprocess.run([sys.executable, str(ROOT / "separate.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_hub_model_from_the_local_cache_and_offline_error(tmp_path, tiny_checkpoint):
    cache = tmp_path / "hub"
    snap = cache / "models--someone--tiny" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, snap / "checkpoint.pt")
    (cache / "models--someone--tiny" / "refs").mkdir()
    (cache / "models--someone--tiny" / "refs" / "main").write_text("0123abcd")
    sf.write(tmp_path / "mix.wav", voice(4000), 8000)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    r = _run_separate([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"), "--model",
                       "hf://someone/tiny", "--quiet", "--device", "cpu"], env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "s2" / "mix.wav").is_file()
    r = _run_separate([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out2"), "--model",
                       "hf://fakufaku/diffsep", "--quiet"], env)
    assert r.returncode == 2
    assert "hf://fakufaku/diffsep: cannot reach the Hugging Face Hub" in r.stderr


def test_inputs_that_would_share_outputs_are_refused_before_any_work(tmp_path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "x.wav", voice(4000), 8000)
    sf.write(tmp_path / "a" / "song.wav", voice(4000), 8000)
    sf.write(tmp_path / "a" / "song.flac", voice(4000), 8000)
    out = tmp_path / "out"
    missing_model = str(tmp_path / "no_model.pt")  # never loaded: the clash is found first
    assert main([str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav"), "-o", str(out),
                 "--model", missing_model]) == 2
    err = capsys.readouterr().err
    assert "would both be written as 'x'" in err and "no_model" not in err
    assert main([str(tmp_path / "a"), "-o", str(out), "--model", missing_model]) == 2
    assert "song.flac and" in capsys.readouterr().err and not out.exists()


def test_recursive_names_keep_same_named_files_apart(tmp_path, tiny_checkpoint):
    for d in ("a", "b"):
        (tmp_path / "in" / d).mkdir(parents=True)
        sf.write(tmp_path / "in" / d / "x.wav", voice(4000, seed=ord(d)), 8000)
    out = tmp_path / "out"
    assert main([str(tmp_path / "in"), "--recursive", "-o", str(out), "--model", str(tiny_checkpoint),
                 "--quiet"]) == 0
    a, b = sf.read(out / "s1" / "a" / "x.wav")[0], sf.read(out / "s1" / "b" / "x.wav")[0]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("args,message", [
    (["--overlap-seconds", "2", "--chunk-seconds", "2"], "must be less than --chunk-seconds"),
    (["--overlap-seconds", "-1"], "must be >= 0"),
    (["--steps", "0"], "must be >= 1"),
    (["--t-eps", "0"], "must be > 0"),
    (["--solver", "rk4"], "invalid choice: 'rk4'"),
    (["--batch-size", "0"], "must be a positive integer"),
    (["--batch-size", "-3"], "must be a positive integer"),
    (["--corrector-steps", "-1"], "must be >= 0"),
    (["--snr", "0"], "must be > 0"),
    (["--shifts", "0"], "must be a positive integer"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["x.wav", "-o", str(tmp_path / "out"), "--model", "m.pt", *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_sampler_options_are_the_sampler_settings_fields():
    """Every SamplerSettings field has an option (kind as --sampler) with its choices; adding a
    field adds the option."""
    from dataclasses import fields

    from diffsep.cli.common import add_sampler_args, sampler_overrides
    from diffsep.samplers import SAMPLERS, SamplerSettings
    import argparse

    p = argparse.ArgumentParser()
    add_sampler_args(p)
    flags = {a.dest: a for a in p._actions if a.dest.startswith("sampler_")}
    assert set(flags) == {f"sampler_{f.name}" for f in fields(SamplerSettings)}
    assert tuple(flags["sampler_kind"].choices) == tuple(SAMPLERS) and "--sampler" in flags["sampler_kind"].option_strings
    args = p.parse_args(["--sampler", "ode", "--steps", "5", "--reference-dt", "--t-start", "0.2"])
    assert sampler_overrides(args) == {"kind": "ode", "steps": 5, "reference_dt": True, "t_start": 0.2}
    assert SamplerSettings().updated(**sampler_overrides(args)).kind == "ode"


def test_an_output_path_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    sf.write(tmp_path / "x.wav", voice(4000), 8000)
    (tmp_path / "out").write_text("a file")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "none.pt")])
    assert e.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err


def test_other_containers_and_names_that_are_not_utf8(tmp_path, tiny_checkpoint):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.aiff", voice(4000), 8000)
    sf.write(d / "b.au", voice(4000), 8000, subtype="PCM_16")
    raw = os.fsencode(str(d)) + b"/caf\xe9.wav"
    sf.write(raw, voice(4000), 8000)
    out = tmp_path / "out"
    assert main([str(d), "-o", str(out), "--model", str(tiny_checkpoint), "--quiet"]) == 0
    assert sorted(os.listdir(os.fsencode(str(out / "s2")))) == [b"a.wav", b"b.wav", b"caf\xe9.wav"]


def test_a_full_disk_is_said_plainly(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import shutil as sh
    from collections import namedtuple


    sf.write(tmp_path / "x.wav", voice(4000), 8000)
    usage = namedtuple("usage", "total used free")

    def write_fails(*a, **k):
        raise RuntimeError("Error opening file: System error.")  # what libsndfile says

    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9, 0))
    monkeypatch.setattr(sf, "write", write_fails)  # diffsep.audio imports soundfile where used
    monkeypatch.setattr(sf.SoundFile, "write", write_fails)  # the separate command writes in blocks
    assert main([str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and str(tmp_path / "out" / "s1" / "x.wav") in err


def test_warm_start_from_the_command_line(tmp_path, tiny_checkpoint, capsys):
    from diffsep.inference.packaging import save_model as save_checkpoint
    from diffsep.nets.convtasnet import ConvTasNet

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ct.pt", ConvTasNet(n_src=2, N=16, B=8, H=16, X=2, R=1, Sc=8))
    sf.write(tmp_path / "x.wav", voice(6000), 8000)
    out = tmp_path / "out"
    assert main([str(tmp_path / "x.wav"), "-o", str(out), "--model", str(tiny_checkpoint), "--quiet",
                 "--warm-start", str(tmp_path / "ct.pt"), "--t-start", "0.5", "--steps", "4"]) == 0
    assert sf.info(out / "s2" / "x.wav").frames == 6000
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.wav"), "-o", str(out), "--model", "m.pt", "--t-start", "0"])


def _music_checkpoint(path):
    from diffsep.inference.packaging import save_model as save_checkpoint
    from diffsep.nets.demucs import Demucs

    torch.manual_seed(0)
    model = Demucs(n_src=4, audio_channels=2, channels=4, depth=2, lstm_layers=1)
    save_checkpoint(path, model, config={"data": {"kind": "musdb", "sample_rate": 8000},
                                         "loss": {"fixed_order": True}})
    return path


def test_music_model_writes_stereo_stems_named_by_stem(tmp_path):
    ckpt = _music_checkpoint(tmp_path / "demucs.pt")
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "song.wav", np.stack([voice(6000), voice(6000, seed=2)], 1), 8000)
    sf.write(tmp_path / "in" / "mono.wav", voice(5000), 8000)
    sf.write(tmp_path / "in" / "surround.wav", np.stack([voice(4000)] * 3, 1), 8000)
    out = tmp_path / "out"
    rc = main([str(tmp_path / "in"), "-o", str(out), "--model", str(ckpt), "--quiet", "--device", "cpu",
               "--chunk-seconds", "0.5", "--overlap-seconds", "0.1"])
    assert rc == 1  # the 3-channel file fails alone
    assert sorted(p.name for p in out.iterdir()) == ["bass", "drums", "other", "vocals"]
    for stem in ("drums", "vocals"):
        x, sr = sf.read(out / stem / "song.wav")
        assert sr == 8000 and x.shape == (6000, 2)
        assert sf.read(out / stem / "mono.wav")[0].shape == (5000, 2)  # mono input on both channels
    assert not (out / "drums" / "surround.wav").exists()


def test_shift_averaging_from_the_command_line(tmp_path, capsys):
    """--shifts 4 averages over 4 delays: a different estimate of the same length; more shifts than
    the model's frame hop is a one-line error naming both."""
    from diffsep.inference.packaging import save_model as save_checkpoint
    from diffsep.nets.convtasnet import ConvTasNet

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ct.pt", ConvTasNet(n_src=2, N=16, L=8, B=8, H=16, X=2, R=1, Sc=8))
    sf.write(tmp_path / "x.wav", voice(6000), 8000)
    outs = {}
    for shifts in ("1", "4"):
        out = tmp_path / f"out{shifts}"
        assert main([str(tmp_path / "x.wav"), "-o", str(out), "--model", str(tmp_path / "ct.pt"), "--quiet",
                     "--shifts", shifts]) == 0
        outs[shifts] = sf.read(out / "s1" / "x.wav")[0]
    assert outs["1"].shape == outs["4"].shape == (6000,) and not np.allclose(outs["1"], outs["4"])
    assert main([str(tmp_path / "x.wav"), "-o", str(tmp_path / "out5"), "--model", str(tmp_path / "ct.pt"),
                 "--quiet", "--shifts", "5"]) != 0
    assert "5 shifts over a frame hop of 4 samples" in capsys.readouterr().err
