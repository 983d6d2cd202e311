"""train.py as a hostile user meets it: bad files, bad values, wrong or damaged run directories.
Every case ends within seconds with one sentence naming the problem."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffsep.storage.checkpoint import safe_load
from helpers_audio import make_mix_tree, make_train_cv_tree

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.kind=folder", "data.train_split=tr", "data.valid_split=cv", "data.segment_seconds=0.25",
         "model.nf=8", "model.ch_mult=[1,2,2]", "model.attn_resolutions=[128]", "train.batch_size=2",
         "train.val_every=0", "train.val_batches=1", "train.val_sep_items=0", "train.log_every=1"]


def train_process(*args, timeout=120):
    """Run train.py as a process (what hangs or dies shows); returns (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "train.py", str(ROOT / "configs" / "tiny.yaml"), *SMALL, *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def train(*args, config="tiny.yaml", small=SMALL):
    """Run the train command line in this process (what train.py runs, without the ~3 s of a new
    interpreter and torch import); returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from diffsep.cli.train import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(ROOT / "configs" / config), *small, *args])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_train_cv_tree(tmp_path_factory.mktemp("data"), 6)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_file_stops_the_run_naming_it(tmp_path, workers):
    root = tmp_path / "data"
    make_mix_tree(root / "tr", 4, n=2500)
    make_mix_tree(root / "cv", 1, n=2500, seed=1)
    bad = root / "tr" / "s1" / "item01.wav"
    bad.write_bytes(bad.read_bytes()[:3000])
    rc, out, err = train_process(f"data.root={root}", f"data.num_workers={workers}",
                                 f"train.run_dir={tmp_path / 'run'}", "train.max_steps=50",
                                 timeout=60)  # it used to hang with workers
    last = err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("error: ") and str(bad) in last and "truncated WAV" in last
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("override,message", [
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.accumulate=-1", "train.accumulate must be >= 1"),
    ("loss.p_T=1.5", "loss.p_T must be in [0, 1]"),
    ("sampler.steps=0", "sampler.steps must be >= 1"),
    (None, "data.root is not set"),  # tiny.yaml names no root
])
def test_bad_values_are_named(data_root, tmp_path, override, message):
    given = [override, f"data.root={data_root}"] if override else []
    rc, out, err = train(f"train.run_dir={tmp_path / 'run'}", "train.max_steps=1", *given)
    assert rc == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_nothing_to_train_says_so(data_root, tmp_path):
    rc, out, err = train(f"data.root={data_root}", f"train.run_dir={tmp_path / 'run'}", "train.max_steps=0")
    assert rc == 0 and "nothing to save" in out and not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.slow
def test_run_directories_of_another_model_damaged_or_littered(data_root, tmp_path):
    run = tmp_path / "run"
    rc, out, err = train(f"data.root={data_root}", f"train.run_dir={run}", "train.max_steps=2",
                         "train.keep_last=3")
    assert rc == 0, err
    # another size, then another family, in the same run directory: one sentence each
    other_family = train("data.kind=folder", "data.train_split=tr", "data.valid_split=cv", "data.segment_seconds=0.25",
                         f"data.root={data_root}", f"train.run_dir={run}", "train.max_steps=3",
                         config="convtasnet_tiny.yaml", small=[])
    rc, out, err = train(f"data.root={data_root}", f"train.run_dir={run}", "train.max_steps=3", "model.nf=16")
    for rc, err in ((rc, err), other_family[::2]):
        assert rc == 2 and "written by a different model" in err and "Traceback" not in err, err[-500:]
        assert len(err) < 2000
    # a killed write left a temporary file, and last.pt is truncated: resume from step_2.pt
    from diffsep.storage.atomic import _host_tag

    killed = subprocess.Popen(["true"])
    killed.wait()
    (run / f".last.diffsep-tmp-{_host_tag()}-{killed.pid}-1a2b3c4d.pt").write_bytes(b"")
    (run / f".best.diffsep-tmp-{_host_tag()}-{killed.pid}-5e6f7a8b.pt").write_bytes(b"")
    raw = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(raw[:len(raw) // 3])
    rc, out, err = train(f"data.root={data_root}", f"train.run_dir={run}", "train.max_steps=3")
    assert rc == 0, err[-1000:]
    assert "warning:" in err and "step_00000002.pt" in err and "stopped at step 3" in out
    assert safe_load(run / "last.pt")["step"] == 3
    assert not [p for p in run.iterdir() if "diffsep-tmp" in p.name]


def test_checkpoints_follow_the_umask(tmp_path):
    from diffsep.storage.checkpoint import atomic_save

    old = os.umask(0o022)
    try:
        atomic_save({"x": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
