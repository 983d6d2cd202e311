"""Music from the command lines: synthetic stems -> train.py (Demucs, demucs_tiny.yaml) ->
separate.py -> diffsep evaluate, as a user runs them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=300):
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


@pytest.mark.slow
def test_synthetic_stems_train_separate_evaluate(tmp_path):
    data, runs, out = tmp_path / "synth", tmp_path / "run", tmp_path / "out"
    run("-m", "diffsep", "synth", "--root", str(data), "--train", "4", "--test", "1", "--seconds", "2",
        "--rate", "8000")
    run("train.py", "configs/demucs_tiny.yaml", f"data.root={data}", f"train.run_dir={runs}",
        "data.sample_rate=8000", "data.segment_seconds=0.5", "data.num_workers=0", "demucs.channels=4",
        "demucs.depth=2", "train.max_steps=3", "train.val_every=3", "train.val_sep_items=1")
    ckpt = runs / "last.pt"
    run("separate.py", str(data / "test" / "track000" / "mixture.wav"), "-o", str(out), "--model", str(ckpt),
        "--quiet")
    for stem in ("drums", "bass", "other", "vocals"):
        x, sr = sf.read(out / stem / "mixture.wav")
        assert sr == 8000 and x.shape == (16000, 2)
    run("-m", "diffsep", "evaluate", "--model", str(ckpt), "--dataset", "musdb", "--data-root", str(data),
        "--split", "test", "--out", str(tmp_path / "eval"), "--quiet", "--jobs", "0")
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert all(summary[f"sdr_{s}"]["count"] == 1 for s in ("drums", "bass", "other", "vocals"))
