"""diffsep evaluate in both modes, end to end."""
import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers_audio import make_mix_tree, write_refs_and_estimates
from diffsep.cli.evaluate import main


def test_folder_mode_scores_matches_and_reports_missing(tmp_path, capsys):
    write_refs_and_estimates(tmp_path)
    (tmp_path / "est" / "s2" / "utt2.wav").unlink()
    out = tmp_path / "res"
    rc = main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out", str(out),
               "--jobs", "1", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1 and "utt2" in captured.err and "no such file" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["si_sdr"]["count"] == 2
    assert math.isclose(summary["si_sdr"]["mean"], 10.0, abs_tol=0.05)  # the swap was undone
    for key in ("si_sdri", "sdr", "pesq", "estoi", "stoi"):
        assert key in summary and set(summary[key]) == {"mean", "median", "std", "ci95", "count", "excluded"}
        assert summary[key]["excluded"] == {}
    assert summary["info"]["pesq_mode"] == "nb"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["name"] for r in rows] == ["utt0", "utt1"]
    assert "| si_sdr |" in (out / "summary.md").read_text() and "| si_sdr |" in captured.out


def test_folder_mode_at_another_rate_and_fixed_order(tmp_path):
    write_refs_and_estimates(tmp_path, n_items=2)
    for p in (tmp_path / "est").rglob("*.wav"):  # estimates written at 16 kHz are resampled
        x, _ = sf.read(p)
        sf.write(p, np.interp(np.arange(2 * len(x)) / 2, np.arange(len(x)), x), 16000, subtype="FLOAT")
    out = tmp_path / "res"
    assert main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out", str(out),
                 "--no-perceptual", "--fixed-order", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert float(rows[0]["si_sdr"]) > 5  # utt0 in order
    assert float(rows[1]["si_sdr"]) < 0  # utt1 swapped, and no permutation search


def test_model_mode_on_a_dataset_split_with_examples(tmp_path, tiny_checkpoint):
    make_mix_tree(tmp_path / "data" / "tt", n_items=2, n=3000)
    out = tmp_path / "res"
    rc = main(["--model", str(tiny_checkpoint), "--data-root", str(tmp_path / "data"), "--dataset", "folder",
               "--split", "tt", "--out", str(out), "--jobs", "0", "--save-examples", "1", "--quiet",
               "--device", "cpu", "--chunk-seconds", "0.2", "--overlap-seconds", "0.05"])
    assert rc == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2
    for r in rows:
        assert int(r["nfe"]) == 4 and float(r["runtime_s"]) > 0 and math.isfinite(float(r["si_sdri"]))
        assert r["pesq"] and r["estoi"] and r["stoi"]  # computed (NaN allowed for PESQ on tones)
    info = json.loads((out / "summary.json").read_text())["info"]
    assert info["mode"] == "model" and info["nfe"] == 4 and info["sampler"]["steps"] == 2
    runtime, duration = (sum(float(r[k]) for r in rows) for k in ("runtime_s", "duration_s"))
    assert info["rtf"] == pytest.approx(runtime / duration, rel=1e-4)  # overall, not a mean of ratios (csv: 6 digits)
    ex = out / "examples"
    assert (ex / "item00.png").stat().st_size > 1000
    assert sorted(p.name for p in (ex / "item00").iterdir()) == ["mix.wav", "s1_est.wav", "s1_ref.wav",
                                                                 "s2_est.wav", "s2_ref.wav"]


def test_mode_arguments_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:  # neither mode: a usage error
        main(["--out", str(tmp_path)])
    assert usage.value.code == 2 and "give either --model" in capsys.readouterr().err
    assert main(["--est-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit):  # checked before any work
        main(["--model", "none.pt", "--data-root", str(tmp_path), "--out", str(tmp_path / "afile")])
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["--est-dir", str(tmp_path), "--ref-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no s1/ folder" in capsys.readouterr().err


def test_silent_and_extra_estimates_are_reported_not_averaged_away(tmp_path, capsys):
    """A silent estimate scores -inf (not the ~0 dB its eps terms give), is excluded from every
    mean with its reason, and an estimate folder without references is reported."""
    write_refs_and_estimates(tmp_path)
    path = tmp_path / "est" / "s2" / "utt1.wav"
    x, sr = sf.read(path)
    sf.write(path, np.zeros_like(x), sr, subtype="FLOAT")
    (tmp_path / "est" / "s3").mkdir()
    out = tmp_path / "res"
    rc = main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out", str(out),
               "--jobs", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and "s3" in err and "not scored" in err
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert float(rows["utt1"]["si_sdr"]) == -math.inf and rows["utt1"]["problem"] == "estimate s2 is silent"
    for key in ("si_sdr", "si_sdri", "sdr", "pesq", "estoi", "stoi"):
        assert summary[key]["count"] == 2 and summary[key]["excluded"] == {"utt1": "estimate s2 is silent"}
    assert math.isclose(summary["si_sdr"]["mean"], 10.0, abs_tol=0.05)
    assert summary["info"]["unscored_estimates"] == [str(tmp_path / "est" / "s3")]
    md = (out / "summary.md").read_text()
    assert "| excluded |" in md and "utt1: estimate s2 is silent" in md


def test_music_model_on_a_musdb_split_is_scored_per_stem(tmp_path):
    from diffsep.inference.packaging import save_model as save_checkpoint
    from diffsep.data.synth_music import write_corpus
    from diffsep.nets.demucs import Demucs

    write_corpus(tmp_path / "music", n_train=0, n_test=2, seconds=2.5, sample_rate=8000)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", Demucs(n_src=4, audio_channels=2, channels=4, depth=2, lstm_layers=1),
                    config={"data": {"kind": "musdb", "sample_rate": 8000}, "loss": {"fixed_order": True}})
    out = tmp_path / "res"
    # no --dataset, no --split: a musdb-trained model is scored on the musdb layout's test split
    rc = main(["--model", str(tmp_path / "m.pt"), "--data-root", str(tmp_path / "music"),
               "--out", str(out), "--jobs", "0", "--quiet", "--device", "cpu",
               "--save-examples", "1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    for stem in ("drums", "bass", "other", "vocals"):
        assert summary[f"sdr_{stem}"]["count"] == 2 and summary[f"si_sdr_{stem}"]["count"] == 2
    assert "pesq" not in summary and summary["info"]["fixed_order"]
    assert (summary["info"]["dataset"], summary["info"]["split"]) == ("musdb", "test")
    rows = list(csv.DictReader((out / "results.csv").open()))
    stems_mean = np.mean([float(rows[0][f"sdr_{s}"]) for s in ("drums", "bass", "other", "vocals")])
    assert float(rows[0]["sdr"]) == pytest.approx(stems_mean, abs=1e-4)
    assert all(summary[f"sdri_{s}"]["count"] == 2 for s in ("drums", "vocals"))
    assert (out / "examples" / "track000.png").is_file()
