"""The run directory as a hostile user (or a second training) meets it: only this program's stale
temporaries are removed, one training at a time holds the directory, a resume with another seed
is refused, non-finite training stops without writing non-finite checkpoints, and bad device,
betas, base lists or a cut-short metrics.jsonl give one sentence instead of a traceback."""
import contextlib
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffsep.config.settings import ConfigError, load_config
from diffsep.storage.atomic import _host_tag, atomic_path, remove_stale_temporaries, stale_temporary
from diffsep.storage.checkpoint import CheckpointError, safe_load
from diffsep.training import run_lock
from diffsep.training.divergence import TrainingDiverged
from diffsep.training.run_lock import RunDirBusy, RunLock
from diffsep.training.runlog import RunLog
from diffsep.training.trainer import Trainer
from helpers_audio import make_train_cv_tree

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.kind=folder", "data.train_split=tr", "data.valid_split=cv", "data.segment_seconds=0.1",
        "data.num_workers=0", "convtasnet.N=8", "convtasnet.B=8", "convtasnet.H=8", "convtasnet.X=1",
        "convtasnet.R=1", "convtasnet.Sc=8", "train.batch_size=2", "train.accumulate=1",
        "train.log_every=1", "train.ckpt_every=1", "train.val_every=0", "train.val_every_epochs=0",
        "train.val_batches=1", "train.val_sep_items=0"]


def tiny_cfg(data_root, run_dir, *extra):
    """A Conv-TasNet of a few hundred weights on 0.1 s crops: a step takes milliseconds."""
    return load_config(ROOT / "configs" / "convtasnet_tiny.yaml",
                       [*TINY, f"data.root={data_root}", f"train.run_dir={run_dir}", *extra])


def dead_pid() -> int:
    """The pid of a process that has ended."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def temp_name(stem: str, pid: int, suffix: str = ".pt", host: str | None = None) -> str:
    return f".{stem}.diffsep-tmp-{host or _host_tag()}-{pid}-1a2b3c4d{suffix}"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_train_cv_tree(tmp_path_factory.mktemp("data"), 4, n=1000)


@pytest.fixture(scope="module")
def one_step_run(data_root, tmp_path_factory):
    """A run directory after one optimizer step (last.pt, best.pt, step_00000001.pt, metrics)."""
    run = tmp_path_factory.mktemp("base") / "run"
    Trainer(tiny_cfg(data_root, run, "train.max_steps=1")).run()
    return run


@pytest.fixture
def run_copy(one_step_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_step_run, run)
    return run


# -- item 3: temporaries and the run directory's name ---------------------------------------------
@pytest.mark.parametrize("name", ["last.pt", "x", "a.tar.gz", ".hidden.wav", "é" * 120 + ".flac",
                                  "b" * 254, "notes.tmp.md"])
def test_temporaries_have_a_pattern_only_this_program_writes(tmp_path, name):
    seen = []
    with atomic_path(tmp_path / name) as tmp:
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.exists()
        assert ".diffsep-tmp-" in tmp.name and f"-{os.getpid()}-" in tmp.name
        assert len(tmp.name.encode()) <= 255
        if "." in name.lstrip("."):
            assert tmp.suffix == Path(name).suffix  # writers choosing a format by extension still work
        assert not stale_temporary(tmp)  # its writer (this process) is alive
        tmp.write_bytes(b"x")
    assert (tmp_path / name).read_bytes() == b"x" and not seen[0].exists()


def test_start_up_removes_only_stale_temporaries_of_this_program(data_root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead, alive = dead_pid(), os.getpid()
    users = [".thesis.tmp.md", ".notes.tmp", ".last.1a2b3c4d.tmp.pt", "last.diffsep-tmp-x.pt",
             temp_name("last", dead, host="0badc0de"),  # another host's writer: cannot tell, kept
             temp_name("last", alive), temp_name("best", alive, ".wav")]  # writers at work: kept
    stale = [temp_name("last", dead), temp_name("step_00000003", dead), temp_name("noext", dead, "")]
    for name in users + stale:
        (run / name).write_bytes(b"mine")
    (run / "sub").mkdir()
    (run / "sub" / temp_name("deep", dead)).write_bytes(b"")  # not in the folder itself
    tr = Trainer(tiny_cfg(data_root, run, "train.max_steps=0"))
    tr.run()
    left = {p.name for p in run.iterdir()}
    assert set(users) <= left, set(users) - left
    assert not set(stale) & left
    assert (run / "sub" / temp_name("deep", dead)).exists()
    assert remove_stale_temporaries(run) == []


@pytest.mark.parametrize("run_dir", ["''", "'   '", "'\t'"])  # train.run_dir='' in YAML's quoting
def test_an_empty_run_dir_is_refused_in_one_sentence(data_root, tmp_path, monkeypatch, run_dir):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="train.run_dir is empty"):
        Trainer(tiny_cfg(data_root, run_dir, "train.max_steps=1")).run()
    assert list(tmp_path.iterdir()) == []  # nothing written into the current directory


# -- item 4: the lock -------------------------------------------------------------------------------
def test_a_second_lock_on_a_run_dir_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path) as first:
        info = json.loads((tmp_path / "train.lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(RunDirBusy) as e:
            RunLock(tmp_path).acquire()
        msg = str(e.value)
        assert "\n" not in msg and f"pid {os.getpid()}" in msg and socket.gethostname() in msg
        assert first.info["since"] in msg and "train.run_dir" in msg
    assert not (tmp_path / "train.lock").exists()  # released: removed
    with RunLock(tmp_path):  # and free again
        pass


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_on_an_exception_or_ctrl_c(tmp_path, exc):
    with pytest.raises(exc):
        with RunLock(tmp_path):
            raise exc()
    with RunLock(tmp_path):
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, capsys):
    pid = dead_pid()
    (tmp_path / "train.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                                     "since": "2001-02-03 04:05:06"}))
    with RunLock(tmp_path) as lock:
        assert lock.info["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert "warning:" in err and f"pid {pid}" in err and "2001-02-03 04:05:06" in err


def test_without_flock_the_lock_file_decides(tmp_path, monkeypatch, capsys):
    """File systems without flock: a live holder on this host or any holder on another host keeps
    the directory; a dead holder, or a reused pid (another start time), is taken over."""
    monkeypatch.setattr(run_lock, "_flock", lambda fd: None)
    lock_file = tmp_path / "train.lock"
    with RunLock(tmp_path):
        with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    ticks = run_lock._start_ticks(os.getpid())
    cases = [({"pid": os.getpid(), "host": "elsewhere"}, True),
             ({"pid": dead_pid(), "host": socket.gethostname()}, False),
             ({"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": ticks}, True)]
    if ticks is not None:  # the pid of a process that started later: a reused pid
        cases.append(({"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": ticks + 1}, False))
    for info, busy in cases:
        lock_file.write_text(json.dumps(info))
        if busy:
            with pytest.raises(RunDirBusy, match=f"delete {lock_file}"):
                RunLock(tmp_path).acquire()
        else:
            RunLock(tmp_path).acquire().release()
            assert "taking over" in capsys.readouterr().err
            assert not lock_file.exists()


def test_a_training_on_a_locked_run_dir_stops_before_writing(data_root, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_cfg(data_root, run, "train.max_steps=1")
    late = Trainer(cfg)  # set up before the other run took the directory
    with RunLock(run):
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(RunDirBusy, match="is in use by another training"):
            Trainer(cfg)  # refused before the set-up (datasets, network)
        with pytest.raises(RunDirBusy, match="is in use by another training"):
            late.run()
        assert sorted(p.name for p in run.iterdir()) == before


def test_a_training_releases_its_lock_on_ctrl_c(data_root, tmp_path):
    run = tmp_path / "run"
    tr = Trainer(tiny_cfg(data_root, run, "train.max_steps=2"))
    held = []

    def interrupted(micro_batches):
        held.append((run / "train.lock").is_file())
        raise KeyboardInterrupt

    tr.train_step = interrupted
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    assert held == [True] and not (run / "train.lock").exists()
    RunLock(run).acquire().release()


def test_resuming_with_another_seed_is_refused(data_root, run_copy):
    with pytest.raises(CheckpointError, match=r"train.seed=0 \(configured: 1\)"):
        Trainer(tiny_cfg(data_root, run_copy, "train.max_steps=2", "train.seed=1")).run()
    assert safe_load(run_copy / "last.pt")["step"] == 1


@pytest.mark.slow
def test_two_trainings_on_one_run_dir(data_root, tmp_path):
    """A second train.py on a run directory in use fails at once naming the first; after the
    first is killed (kill -9: no clean-up), the next run takes the lock over and resumes."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "train.py", str(ROOT / "configs" / "convtasnet_tiny.yaml"), *TINY,
                              f"data.root={data_root}", f"train.run_dir={run}", "train.max_steps=100000",
                              "train.ckpt_every=20", "train.log_every=20"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "last.pt").is_file():
            assert first.poll() is None and time.time() < deadline, first.stderr.read()[-2000:]
            time.sleep(0.2)
        from diffsep.cli.train import main

        err = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main([str(ROOT / "configs" / "convtasnet_tiny.yaml"), *TINY, f"data.root={data_root}",
                       f"train.run_dir={run}", "train.max_steps=100000"])
        assert rc == 2 and f"pid {first.pid}" in err.getvalue() and "Traceback" not in err.getvalue()
        assert err.getvalue().count("\n") == 1 and time.perf_counter() - t0 < 60
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    step = safe_load(run / "last.pt")["step"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(ROOT / "configs" / "convtasnet_tiny.yaml"), *TINY, f"data.root={data_root}",
                   f"train.run_dir={run}", f"train.max_steps={step + 1}"])
    assert rc == 0 and "taking over the lock" in err.getvalue() and f"pid {first.pid}" in err.getvalue()
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == sorted(set(steps))  # one record per step, in order


# -- item 7: non-finite training ---------------------------------------------------------------------
def finite(weights: dict) -> bool:
    return all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def nan_loss_at(trainer, calls):
    """Make the family's loss NaN on the given 1-based calls (micro-batches)."""
    loss, n = trainer.family.loss, [0]

    def patched(*args):
        n[0] += 1
        out = loss(*args)
        return out * math.nan if n[0] in calls else out

    trainer.family.loss = patched


def test_a_non_finite_loss_skips_the_step_and_training_goes_on(data_root, tmp_path):
    tr = Trainer(tiny_cfg(data_root, tmp_path / "run", "train.max_steps=3"))
    initial = {k: v.clone() for k, v in tr.model.state_dict().items()}
    nan_loss_at(tr, {1})
    steps, step = [], tr.opt.step
    tr.opt.step = lambda *a, **k: (steps.append(tr.step), step(*a, **k))[1]
    assert tr.run() == 3
    assert steps == [1, 2]  # the optimizer did not step on the NaN batch (step 1)
    ckpt = safe_load(tmp_path / "run" / "step_00000001.pt")
    assert all(torch.equal(ckpt["model"][k], v) for k, v in initial.items())  # untouched by it
    assert finite(tr.model.state_dict()) and finite(safe_load(tmp_path / "run" / "last.pt")["ema"])


def test_non_finite_losses_in_a_row_stop_the_run_keeping_the_last_finite_checkpoint(data_root, run_copy):
    good = safe_load(run_copy / "last.pt")
    best = (run_copy / "best.pt").read_bytes()
    tr = Trainer(tiny_cfg(data_root, run_copy, "train.max_steps=50", "train.max_nonfinite=3"))
    nan_loss_at(tr, set(range(1000)))
    with pytest.raises(TrainingDiverged, match=r"not finite .* at 3 steps in a row \(steps 2-4"):
        tr.run()
    assert tr.step == 4
    for name in ("last.pt", *(f"step_{s:08d}.pt" for s in (2, 3))):
        ckpt = safe_load(run_copy / name)
        assert all(torch.equal(ckpt["model"][k], v) for k, v in good["model"].items()), name
        assert finite(ckpt["ema"]) and finite(ckpt["model"])
    assert (run_copy / "best.pt").read_bytes() == best
    assert not (run_copy / "train.lock").exists()


def test_non_finite_weights_are_never_saved_and_the_command_says_so(data_root, tmp_path):
    """optim.lr=inf: the first update makes every weight NaN; no checkpoint is written, exit 2."""
    from diffsep.cli.train import main

    run = tmp_path / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(ROOT / "configs" / "convtasnet_tiny.yaml"), *TINY, f"data.root={data_root}",
                   f"train.run_dir={run}", "train.max_steps=3", "optim.lr=inf"])
    last = err.getvalue().strip().splitlines()[-1]
    assert rc == 2 and last.startswith("error: training diverged") and "weights are not finite" in last
    assert "Traceback" not in err.getvalue()
    assert not list(run.glob("*.pt"))


def test_init_from_non_finite_weights_is_refused(data_root, one_step_run, tmp_path):
    ckpt = safe_load(one_step_run / "last.pt")
    key = next(k for k, v in ckpt["ema"].items() if v.is_floating_point())
    ckpt["ema"][key] = torch.full_like(ckpt["ema"][key], math.nan)
    torch.save(ckpt, tmp_path / "nan.pt")
    tr = Trainer(tiny_cfg(data_root, tmp_path / "run", "train.max_steps=1", f"train.init_from={tmp_path / 'nan.pt'}"))
    with pytest.raises(CheckpointError, match="non-finite weights"):
        tr.run()
    assert not list((tmp_path / "run").glob("*.pt"))


# -- item 14: sentences instead of tracebacks -----------------------------------------------------------
@pytest.mark.parametrize("device,message", [("tpu", "is not a device to train on"),
                                            ("cuda", "finds no CUDA GPU"), ("cuda:7", "GPU")])
def test_a_device_that_is_not_there_is_one_sentence(data_root, tmp_path, device, message):
    if device.startswith("cuda") and torch.cuda.device_count() > int(device.partition(":")[2] or 0):
        pytest.skip("this machine has that GPU")
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_cfg(data_root, tmp_path / "run", f"train.device={device}"))


@pytest.mark.parametrize("betas", ["[0.9]", "[0.9,0.99,0.999]", "[]", "[0.9,1.0]", "[-0.1,0.9]"])
def test_adam_betas_must_be_two_values_below_one(betas):
    with pytest.raises(ConfigError, match=r"optim.betas must be two values"):
        load_config(None, [f"optim.betas={betas}"])


def test_a_list_of_base_files_applies_in_order(tmp_path):
    (tmp_path / "a.yaml").write_text("base: root.yaml\ntrain:\n  seed: 1\n  max_steps: 10\n")
    (tmp_path / "root.yaml").write_text("train:\n  seed: 7\n  batch_size: 3\n")
    (tmp_path / "b.yaml").write_text("train:\n  seed: 2\n  log_every: 4\n")
    (tmp_path / "c.yaml").write_text("base: [a.yaml, b.yaml]\ntrain:\n  log_every: 5\n")
    t = load_config(tmp_path / "c.yaml").train
    assert (t.seed, t.max_steps, t.batch_size, t.log_every) == (2, 10, 3, 5)
    (tmp_path / "d.yaml").write_text("base: [a.yaml, 3]\n")
    with pytest.raises(ConfigError, match="'base' must be a config file name or a list of them"):
        load_config(tmp_path / "d.yaml")
    (tmp_path / "e.yaml").write_text("base: [b.yaml, e.yaml]\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "e.yaml")


@pytest.mark.parametrize("tail", ['{"step": 4, "lo', '{"step"', "\x00\x00\x00", '{"step": 4, "loss": 1.0'])
def test_a_half_written_last_metrics_line_is_dropped_with_a_warning(tmp_path, capsys, tail):
    log = RunLog(tmp_path)
    for step in (1, 2, 3):
        log.write(step, {"loss": float(step)})
    log.close()
    with open(log.path, "a") as f:
        f.write(tail)
    log.trim(2)
    assert [json.loads(ln)["step"] for ln in log.path.read_text().splitlines()] == [1, 2]
    assert "warning:" in capsys.readouterr().err


def test_resume_after_a_half_written_metrics_line(data_root, run_copy, capsys):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "loss": 0.123456, "gra')
    assert Trainer(tiny_cfg(data_root, run_copy, "train.max_steps=2")).run() == 2
    records = [json.loads(ln) for ln in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2] and "0.123456" not in str(records)
    assert "metrics.jsonl: dropped 1 line" in capsys.readouterr().err
