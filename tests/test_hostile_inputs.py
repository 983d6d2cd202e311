"""Hostile inputs to the command lines (issue 20, items 6, 8, 11-15): non-finite estimates, files
truncated in any container, glob patterns over symlink loops, unwritable or nested output folders,
out-of-range options, missing devices, figures and bench values; each answered by one sentence
before any work, or by a failure of that one file."""
import math
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.cli import benchmarks, curves, evaluate, separate
from diffsep.inference.loading import NonFiniteEstimate, chunk_samples, load_trained, separate_signal, with_sampler
from diffsep.inference.separator import Separator
from diffsep.storage.audio import AudioError, audio_info, read_audio

from helpers_audio import make_mix_tree, tone_sources, write_refs_and_estimates


def _tone(n=1200, amp=0.3, seed=0):
    return (amp * tone_sources(1, n, seed)[0] / 0.5).astype(np.float32)


def _run(main, argv, capsys):
    """(exit status, stderr) of an in-process command line; a usage error's SystemExit included."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory, tiny_checkpoint):
    """The tiny checkpoint with every floating-point weight NaN."""
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    for key in ("model", "ema"):
        for value in (ckpt.get(key) or {}).values():
            if value.is_floating_point():
                value.fill_(float("nan"))
    path = tmp_path_factory.mktemp("nan") / "nan.pt"
    torch.save(ckpt, path)
    return path


@pytest.fixture
def unwritable_folder(tmp_path):
    """An existing folder in which no file can be created (read-only for a user; /sys for root)."""
    if os.geteuid() != 0:
        d = tmp_path / "readonly"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    d = Path("/sys")
    try:
        os.close(os.open(d / ".diffsep-probe", os.O_CREAT | os.O_WRONLY, 0o666))
    except OSError:
        yield d
        return
    os.unlink(d / ".diffsep-probe")
    pytest.skip("no folder that root cannot write to")


# -- item 6: a non-finite estimate is a failure of that file ------------------------------------
def _constant_separator(value: float) -> Separator:
    def estimate(mix, generator=None):  # (B, C, N) -> (B, K, C, N)
        return torch.full((mix.shape[0], 2, *mix.shape[1:]), value, dtype=mix.dtype)
    return Separator(estimate, n_src=2, sample_rate=8000)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_separate_signal_raises_instead_of_returning_nonfinite_samples(value):
    mix = _tone(2000)
    with pytest.raises(NonFiniteEstimate, match="NaN or Inf"):
        separate_signal(_constant_separator(value), mix, 8000, chunk_seconds=0)
    kept = separate_signal(_constant_separator(value), mix, 8000, chunk_seconds=0, finite=False)
    assert kept.shape == (2, 2000) and not np.isfinite(kept).any()  # asked for as they are (validation)


def test_nan_weights_fail_every_file_and_write_nothing(tmp_path, nan_checkpoint, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a", "b"):
        sf.write(d / f"{name}.wav", _tone(), 8000)
    out = tmp_path / "out"
    rc, err = _run(separate.main, [str(d), "-o", str(out), "--model", str(nan_checkpoint), "--device", "cpu",
                                   "--quiet"], capsys)
    assert rc in (1, 2) and "Traceback" not in err
    if rc == 1:  # refused per file (rc 2: the checkpoint itself refused when read)
        assert "2 failed" in err and all(f"{name}.wav" in err and "NaN or Inf" in err for name in "ab")
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_an_input_the_network_overflows_on_fails_alone(tmp_path, tiny_checkpoint, capsys):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "good.wav", _tone(), 8000)
    x = _tone()
    sf.write(d / "huge.wav", x / np.abs(x).max() * 3e38, 8000, subtype="FLOAT")  # finite, near float32's max
    out = tmp_path / "out"
    rc, err = _run(separate.main, [str(d), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu",
                                   "--quiet"], capsys)
    assert rc == 1 and "1 failed" in err
    failed = [ln for ln in err.splitlines() if ln.strip().startswith("failed:")]
    assert len(failed) == 1 and "huge.wav" in failed[0] and "NaN or Inf" in failed[0]
    assert sorted(p.name for p in out.rglob("*.wav")) == ["good.wav", "good.wav"]


def test_evaluate_counts_a_nan_estimate_as_a_failure(tmp_path, nan_checkpoint, capsys):
    make_mix_tree(tmp_path / "data" / "tt", n_items=2, n=2000)
    rc, err = _run(evaluate.main, ["--model", str(nan_checkpoint), "--data-root", str(tmp_path / "data"),
                                   "--dataset", "folder", "--split", "tt", "--out", str(tmp_path / "res"),
                                   "--jobs", "0", "--no-perceptual", "--quiet", "--device", "cpu"], capsys)
    assert rc in (1, 2) and "Traceback" not in err
    if rc == 1:
        assert "0 utterance(s) scored, 2 failed" in err and "NaN or Inf" in err


# -- item 8: truncation from the header, in every container, whatever the name -------------------
CONTAINERS = {  # file name: soundfile.write options
    "x.wav": {"subtype": "PCM_16"}, "x.aiff": {}, "x.aifc": {"format": "AIFF", "subtype": "FLOAT"},
    "x.w64": {}, "x.rf64": {}, "x.au": {}, "x.caf": {}, "x.flac": {}, "x.ogg": {},
    "x.opus": {"format": "OGG", "subtype": "OPUS"},
    "x.mp3": {},
    "wav_named.au": {"format": "WAV", "subtype": "PCM_16"}, "wav_without_suffix": {"format": "WAV"},
}


@pytest.mark.parametrize("name", CONTAINERS)
def test_a_truncated_file_is_refused_in_every_container(tmp_path, name):
    rate = 48000 if name == "x.opus" else 8000
    x = np.random.default_rng(0).uniform(-0.5, 0.5, rate).astype(np.float32)
    full = tmp_path / name
    sf.write(full, x, rate, **CONTAINERS[name])
    assert read_audio(full)[0].shape[1] > 0 and audio_info(full)[1] > 0  # complete: accepted
    raw = full.read_bytes()
    cut = tmp_path / f"cut_{name}"
    for fraction in np.random.default_rng(1).uniform(0.25, 0.99, 4):
        cut.write_bytes(raw[:int(len(raw) * fraction)])
        with pytest.raises(AudioError) as e:
            read_audio(cut)
        message = str(e.value)
        assert message.startswith(str(cut)) and "\n" not in message
        assert "truncated" in message or (name == "x.flac" and "unreadable" in message), message


@pytest.mark.parametrize("name", ["x.aiff", "x.w64", "x.au", "x.ogg", "wav_named.au"])
def test_the_header_check_refuses_before_reading_samples(tmp_path, name):
    full = tmp_path / name
    sf.write(full, np.zeros(8000, np.float32) + 0.1, 8000, **CONTAINERS[name])
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(full.read_bytes()[:-500])
    with pytest.raises(AudioError, match="truncated"):
        audio_info(cut)


# -- item 11: glob patterns over symlink loops ---------------------------------------------------
def test_a_glob_pattern_over_a_symlink_loop_does_not_hang(tmp_path):
    a = tmp_path / "a"
    (a / "b").mkdir(parents=True)
    for f in (a / "x.wav", a / "b" / "y.wav", a / ".hidden.wav"):
        f.write_bytes(b"")
    (a / "b" / "up").symlink_to("..")
    (a / "b" / "again").symlink_to(a)
    (a / "b" / "loop").symlink_to("loop2")
    (a / "b" / "loop2").symlink_to("loop")
    found = []
    walker = threading.Thread(target=lambda: found.append(separate.collect_inputs([f"{a}/**/*.wav"])),
                              daemon=True)
    walker.start()
    walker.join(20)
    assert not walker.is_alive(), "the glob walk did not finish"
    assert sorted(j.path.relative_to(a).as_posix() for j in found[0]) == ["b/y.wav", "x.wav"]


# -- item 12: the output folder, checked before the model is loaded, and not an input --------------
def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the output folder was checked")


def test_an_unwritable_output_folder_is_found_before_the_model_is_loaded(tmp_path, unwritable_folder,
                                                                         monkeypatch, capsys):
    sf.write(tmp_path / "a.wav", _tone(), 8000)
    monkeypatch.setattr(separate, "load_separator", _no_model)
    rc, err = _run(separate.main, [str(tmp_path / "a.wav"), "-o", str(unwritable_folder)], capsys)
    assert rc == 2 and str(unwritable_folder) in err and "cannot create files" in err
    monkeypatch.setattr(evaluate, "run", _no_model)
    write_refs_and_estimates(tmp_path / "t", 1)
    rc, err = _run(evaluate.main, ["--est-dir", str(tmp_path / "t" / "est"), "--ref-dir", str(tmp_path / "t" / "ref"),
                                   "--out", str(unwritable_folder)], capsys)
    assert rc == 2 and "cannot create files" in err


def test_an_output_folder_inside_the_input_folder_is_not_separated_again(tmp_path, tiny_checkpoint, capsys):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    sf.write(d / "a.wav", _tone(), 8000)
    sf.write(d / "sub" / "b.wav", _tone(seed=1), 8000)
    out = d / "out"
    argv = [str(d), "-o", str(out), "--recursive", "--model", str(tiny_checkpoint), "--device", "cpu", "--quiet"]
    for run in range(3):
        rc, err = _run(separate.main, argv, capsys)
        assert rc == 0 and ("separated 2 file(s)" if run == 0 else "separated 0 file(s)") in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "s1/a.wav", "s1/sub/b.wav", "s2/a.wav", "s2/sub/b.wav"]
    jobs = separate.collect_inputs([f"{d}/**/*.wav"], exclude=out)  # a pattern over it, too
    assert sorted(j.name for j in jobs) == ["a", "b"]


# -- item 13 and 14: out-of-range options are usage errors before any work -------------------------
@pytest.mark.parametrize("option", [["--t-start", "inf"], ["--t-start", "nan"], ["--chunk-seconds", "inf"],
                                    ["--chunk-seconds", "nan"], ["--chunk-seconds", "-1"],
                                    ["--overlap-seconds", "inf"], ["--snr", "inf"], ["--device", "tpu"]])
def test_out_of_range_options_are_usage_errors(tmp_path, option, monkeypatch, capsys):
    monkeypatch.setattr(separate, "load_separator", _no_model)
    sf.write(tmp_path / "a.wav", _tone(), 8000)
    rc, err = _run(separate.main, [str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), *option], capsys)
    assert rc == 2 and f"argument {option[0]}" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_is_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(separate, "load_separator", _no_model)
    rc, err = _run(separate.main, [str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), "--device", "cuda"], capsys)
    last = err.strip().splitlines()[-1]  # after the usage lines
    assert rc == 2 and last.startswith("separate.py: error: argument --device:") and "CUDA" in last
    assert "--device cpu" in last and "Traceback" not in err


@pytest.mark.parametrize("jobs", ["-1", str(4 * (os.cpu_count() or 1) + 1)])
def test_evaluate_refuses_a_worker_count_out_of_range(tmp_path, jobs, capsys):
    rc, err = _run(evaluate.main, ["--est-dir", str(tmp_path), "--ref-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                                   "--jobs", jobs], capsys)
    assert rc == 2 and "argument --jobs" in err


@pytest.mark.parametrize("t_start", [5.0, 1.0 + 1e-9, 0.03, 0.02, 1e-6])
def test_a_warm_start_time_outside_t_eps_to_T_is_refused_when_the_model_is_loaded(tiny_checkpoint, t_start):
    config = load_trained(tiny_checkpoint).config  # T = 1, t_eps = 0.03
    with pytest.raises(ValueError, match="t_start"):
        with_sampler(config, {"init": "model", "t_start": t_start, "t_eps": 0.03})
    assert with_sampler(config, {"init": "model", "t_start": 0.5, "t_eps": 0.03}).sampler.t_start == 0.5


@pytest.mark.parametrize("chunk, overlap", [(math.inf, 1.0), (math.nan, 1.0), (10.0, math.inf), (10.0, math.nan)])
def test_chunking_refuses_non_finite_durations(chunk, overlap):
    with pytest.raises(ValueError, match="finite"):
        chunk_samples(chunk, overlap, 8000)


def test_the_demo_refuses_an_output_that_is_a_file_or_unwritable(tmp_path, unwritable_folder, monkeypatch, capsys):
    from diffsep.cli import demo

    monkeypatch.setattr(demo, "load_separator", _no_model)
    (tmp_path / "afile").write_text("x")
    rc, err = _run(separate.main, ["--demo", "-o", str(tmp_path / "afile")], capsys)
    assert rc == 2 and "exists and is not a folder" in err and "Traceback" not in err
    rc, err = _run(separate.main, ["--demo", "-o", str(unwritable_folder)], capsys)
    assert rc == 2 and "cannot create files" in err


@pytest.mark.parametrize("argv, option", [
    (["score", "--nf", "0"], "--nf"), (["score", "--seconds", "nan"], "--seconds"),
    (["score", "--repeat", "-2"], "--repeat"), (["separate", "--lengths", "-1"], "--lengths"),
    (["separate", "--chunk-seconds", "inf"], "--chunk-seconds"),
    (["separate", "--chunk-seconds", "1", "--overlap-seconds", "2"], "--overlap-seconds"),
    (["separate", "--sampler", "nope"], "--sampler"), (["score", "--device", "tpu"], "--device")])
def test_bad_bench_values_are_usage_errors(argv, option, capsys):
    rc, err = _run(benchmarks.main, argv, capsys)
    assert rc == 2 and f"argument {option}" in err and "Traceback" not in err


def test_a_bench_with_a_missing_config_says_so(tmp_path, capsys):
    rc, err = _run(benchmarks.main, ["train", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert rc == 2 and err.strip() == f"error: {tmp_path / 'nope.yaml'}: no such config file"


# -- item 15: clipping, stale temporaries, curves --------------------------------------------------
def test_integer_formats_warn_when_estimates_go_beyond_full_scale(capsys):
    est = np.array([[0.5, -2.5, 0.1], [0.2, 0.3, 0.9]], np.float32)
    separate.warn_clipping(Path("song.wav"), est, "flac")
    err = capsys.readouterr().err
    assert "song.wav" in err and "2.5" in err and "clipped" in err
    separate.warn_clipping(Path("song.wav"), est, "wav")  # float WAV keeps every sample
    separate.warn_clipping(Path("song.wav"), est / 2.5, "flac")  # within full scale
    assert capsys.readouterr().err == ""


def test_stale_temporaries_of_killed_runs_are_removed_at_start(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from diffsep.storage.atomic import atomic_path

    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    (out / "s1").mkdir(parents=True)
    leftovers = {}
    for who, pid in (("killed", dead.pid), ("running", os.getpid())):
        with monkeypatch.context() as m:
            m.setattr(os, "getpid", lambda pid=pid: pid)
            with atomic_path(out / "s1" / f"{who}.wav") as tmp:  # the name a write of that process uses
                leftovers[who] = tmp
        leftovers[who].write_bytes(b"half a file")  # as if that process had been killed mid-write
    mine = out / "s1" / ".notes.tmp.wav"
    mine.write_bytes(b"the user's")
    sf.write(tmp_path / "a.wav", _tone(), 8000)
    rc, err = _run(separate.main, [str(tmp_path / "a.wav"), "-o", str(out), "--model", str(tiny_checkpoint),
                                   "--device", "cpu", "--quiet"], capsys)
    assert rc == 0 and "removed 1 temporary file(s)" in err
    assert not leftovers["killed"].exists() and leftovers["running"].exists() and mine.exists()


def _metrics(run: Path, value: float) -> None:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(f'{{"step": 5, "loss": 1, "time": 6.0}}\n{{"step": 5, "val_si_sdri": {value}}}\n')


def test_curves_keep_two_runs_of_the_same_name_apart(tmp_path, capsys):
    _metrics(tmp_path / "a" / "run", 1.0)
    _metrics(tmp_path / "b" / "run", 2.0)
    assert curves.main([str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run"), "-o", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "a/run val_si_sdri: 0 min 1.00" in printed and "b/run val_si_sdri: 0 min 2.00" in printed
    assert curves.run_labels([Path("x/run"), Path("x/run")]) == ["run", "run (2)"]


def test_curves_write_the_format_of_the_suffix_or_refuse_it(tmp_path, capsys):
    _metrics(tmp_path / "run", 1.0)
    assert curves.main([str(tmp_path / "run"), "-o", str(tmp_path / "c.jpg")]) == 0
    assert (tmp_path / "c.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, not PNG bytes
    for out, words in ((tmp_path / "c.xyz", "cannot write a figure as .xyz"), (tmp_path, "is a folder")):
        rc, err = _run(curves.main, [str(tmp_path / "run"), "-o", str(out)], capsys)
        assert rc == 2 and words in err and "Traceback" not in err
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "val_si')  # a half-written last line
    rc, err = _run(curves.main, [str(tmp_path / "run"), "-o", str(tmp_path / "d.png")], capsys)
    assert rc == 2 and "metrics.jsonl" in err and len(err.strip().splitlines()) == 1
