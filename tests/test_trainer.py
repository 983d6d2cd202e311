import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from diffsep.storage.checkpoint import CheckpointError, safe_load
from diffsep.inference.packaging import exported
from diffsep.inference.loading import load_model
from diffsep.config.settings import load_config
from diffsep.training.trainer import Actions, Trainer, after_epoch, after_step
from diffsep.training.validation import separation_scores
from helpers_audio import make_train_cv_tree

ROOT = Path(__file__).parents[1]


def tiny_cfg(data_root, run_dir, *extra):
    return load_config(ROOT / "configs" / "tiny.yaml", [
        "data.kind=folder", f"data.root={data_root}", "data.train_split=tr", "data.valid_split=cv",
        "data.segment_seconds=0.25", "data.num_workers=0", "model.nf=8", "model.ch_mult=[1,2,2]",
        "model.attn_resolutions=[128]", "model.init_scale=1.0", f"train.run_dir={run_dir}",
        "train.batch_size=2", "train.accumulate=2", "train.log_every=1", "train.ckpt_every=1",
        "train.val_every=0", "train.val_batches=1", "train.val_sep_items=1", "sampler.steps=2",
        "optim.ema_decay=0.9", *extra])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_train_cv_tree(tmp_path_factory.mktemp("data"), 10)


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "loss" in r]


def test_two_step_run_writes_a_self_describing_checkpoint(data_root, tmp_path):
    cfg = tiny_cfg(data_root, tmp_path / "run", "train.max_steps=2")
    assert Trainer(cfg).run() == 2
    run = tmp_path / "run"
    assert {"last.pt", "best.pt", "config.yaml", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    ck = safe_load(run / "last.pt")
    assert ck["step"] == 2 and ck["config"]["model"]["nf"] == 8
    assert not [p for p in run.iterdir() if "diffsep-tmp" in p.name]
    model = load_model(run / "last.pt")  # the checkpoint alone rebuilds the model (EMA weights)
    assert torch.equal(model.net.backbone.output_layer.bias, ck["ema"]["net.backbone.output_layer.bias"])
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_si_sdr" in r and "val_loss" in r for r in recs)


def test_monitor_splits_are_scored_like_the_validation_split(data_root, tmp_path):
    """Monitoring cv itself (another root, crops as long as validation's) must log the very
    numbers validation logs: same items, same sampler seeds, same EMA weights; by default over
    every item of the split."""
    def run(name, *extra):
        tr = Trainer(tiny_cfg(data_root, tmp_path / name, "train.max_steps=1", "data.monitor_splits=[cv]",
                              f"data.monitor_root={data_root}", "data.monitor_seconds=0.25", *extra))
        tr.run()
        return tr, [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()][-1]

    _, rec = run("one", "data.monitor_items=1")
    assert math.isfinite(rec["val_cv_si_sdri"])
    assert rec["val_cv_si_sdri"] == rec["val_si_sdri"] and rec["val_cv_si_sdr"] == rec["val_si_sdr"]
    tr, rec = run("all")
    cv = tr.monitor_sets["cv"]
    assert len(cv) > 1
    want = separation_scores(tr.val_separator, cv, len(cv), tr.cfg.train.seed)
    assert rec["val_cv_si_sdri"] == pytest.approx(want["si_sdri"], abs=1e-6)
    assert rec["val_cv_si_sdri"] != pytest.approx(rec["val_si_sdri"], abs=1e-6)  # not the first item only


@pytest.mark.parametrize("fp16_export", [False, True])
def test_init_from_starts_model_and_ema_at_the_checkpoints_ema_weights(data_root, tmp_path, fp16_export):
    Trainer(tiny_cfg(data_root, tmp_path / "a", "train.max_steps=2")).run()
    source = safe_load(tmp_path / "a" / "last.pt")
    init = tmp_path / "a" / "last.pt"
    if fp16_export:
        init = tmp_path / "a.pt"
        torch.save(exported(source, fp16=True), init)
    b = Trainer(tiny_cfg(data_root, tmp_path / "b", "train.max_steps=2", f"train.init_from={init}"))
    b._resume()
    for module in (b.model, b.ema.module):
        for k, v in module.state_dict().items():
            want = source["ema"][k].half().float() if fp16_export and v.is_floating_point() else source["ema"][k]
            assert torch.equal(v, want), k
    assert not torch.equal(source["ema"]["net.backbone.output_layer.weight"],
                           source["model"]["net.backbone.output_layer.weight"])  # EMA, not the raw weights
    assert b.run() == 2 and b.step == 2  # a new run: steps count from 0
    with pytest.raises(CheckpointError, match="init_from needs the same model settings"):
        Trainer(tiny_cfg(data_root, tmp_path / "c", "model.nf=4", f"train.init_from={init}"))._resume()


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["data.dynamic_mixing=true", "data.speed_perturb=[0.9,1.1]", "data.eq_db=6.0",
                                        "optim.warmup_steps=3"]])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(data_root, tmp_path, extra):
    # 10 items, global batch 2, accumulate 2: 2 steps per epoch, so 5 steps cross two epochs
    full = Trainer(tiny_cfg(data_root, tmp_path / "full", "train.max_steps=5", *extra))
    full.run()
    Trainer(tiny_cfg(data_root, tmp_path / "part", "train.max_steps=3", *extra)).run()
    resumed = Trainer(tiny_cfg(data_root, tmp_path / "part", "train.max_steps=5", *extra))
    resumed.run()
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)


def test_ema_follows_the_configured_decay_once_per_optimizer_step(data_root, tmp_path):
    """Our EMA wiring: the decay from optim.ema_decay, the first update copies, then one update
    per optimizer step (not per accumulated micro-batch), on the weights after the step."""
    tr = Trainer(tiny_cfg(data_root, tmp_path / "ema", "train.max_steps=3", "optim.ema_decay=0.8",
                          "train.accumulate=2"))
    after_steps = []
    step = tr.opt.step

    def record(*args, **kwargs):
        out = step(*args, **kwargs)
        after_steps.append({k: v.detach().clone() for k, v in tr.model.state_dict().items()})
        return out

    tr.opt.step = record
    tr.run()
    assert len(after_steps) == 3
    key = "net.backbone.output_layer.weight"
    want = after_steps[0][key]
    for w in after_steps[1:]:
        want = 0.8 * want + 0.2 * w[key]
    torch.testing.assert_close(tr.ema.module.state_dict()[key], want)
    assert not torch.equal(want, after_steps[-1][key])


def test_max_minutes_stops_validated_and_counts_time_over_resumes(data_root, tmp_path, monkeypatch):
    """train.max_minutes: the run stops at the first step that reaches the limit, validates and
    saves as at the last step, and a resumed run goes on counting from the checkpoint's clock."""
    import diffsep.training.trainer as trainer_module

    clock = [0.0]  # every optimizer step takes 25 s of this clock
    monkeypatch.setattr(trainer_module, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: clock[0])}))

    def timed(tr):
        step = tr.train_step

        def train_step(batches):
            clock[0] += 25.0
            return step(batches)
        tr.train_step = train_step
        return tr

    run = tmp_path / "run"
    first = timed(Trainer(tiny_cfg(data_root, run, "train.max_steps=50", "train.max_minutes=1")))
    assert first.run() == 3  # 25, 50, 75 s: the third step reaches 60 s
    ck = safe_load(run / "last.pt")
    assert (ck["step"], ck["seconds"]) == (3, 75.0)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_si_sdr" in r] == [3]
    clock[0] = 1000.0  # a new process: its clock starts anywhere
    assert timed(Trainer(tiny_cfg(data_root, run, "train.max_steps=50", "train.max_minutes=2"))).run() == 5
    assert safe_load(run / "last.pt")["seconds"] == 125.0
    assert timed(Trainer(tiny_cfg(data_root, run, "train.max_steps=50", "train.max_minutes=2"))).run() == 5
    assert timed(Trainer(tiny_cfg(data_root, run, "train.max_steps=6"))).run() == 6  # no limit: max_steps


def test_schedule_is_a_pure_function_of_step_and_config():
    t = load_config(None, ["train.log_every=5", "train.val_every=20", "train.ckpt_every=10",
                           "train.val_every_epochs=2"]).train
    acts = {s: after_step(s, t) for s in range(1, 41)}
    assert [s for s, a in acts.items() if a.log] == list(range(5, 41, 5))
    assert [s for s, a in acts.items() if a.validate] == [20, 40]
    assert [s for s, a in acts.items() if a.save] == [10, 30]  # validation saves too
    assert after_step(7, t, last=True) == Actions(log=False, validate=True, save=False)
    assert after_step(7, t, stop=True) == Actions(log=False, validate=False, save=True)
    assert [after_epoch(e, t).validate for e in (1, 2, 3, 4)] == [False, True, False, True]
    assert all(after_epoch(e, t).save != after_epoch(e, t).validate for e in range(1, 5))
    never = load_config(None, ["train.val_every=0"]).train
    assert not any(after_step(s, never).validate for s in range(1, 100))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _capture_grads(trainer, out):
    """Save the (clipped, averaged) gradients of the first optimizer step to ``out``."""
    zero_grad = trainer.opt.zero_grad

    def capture(*args, **kwargs):
        if not Path(out).exists():
            torch.save({n: p.grad.clone() for n, p in trainer.model.named_parameters()
                        if p.grad is not None}, out)
        zero_grad(*args, **kwargs)

    trainer.opt.zero_grad = capture


def _ddp_worker(rank, world, port, data_root, run_dir, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = tiny_cfg(data_root, run_dir, "train.max_steps=1", "train.batch_size=1", "train.accumulate=2",
                   "train.device=cpu")
    tr = Trainer(cfg)
    _capture_grads(tr, f"{out}.rank{rank}")
    tr.run()
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_the_same_global_batch(data_root, tmp_path):
    """Global batch 2 x 2 accumulated: 2 processes with 1 item each == 1 process with 2 items."""
    out = tmp_path / "grads"
    mp.start_processes(_ddp_worker, args=(2, _free_port(), data_root, tmp_path / "ddp", out),
                       nprocs=2, start_method="spawn")
    single = Trainer(tiny_cfg(data_root, tmp_path / "one", "train.max_steps=1", "train.batch_size=2",
                              "train.accumulate=2"))
    _capture_grads(single, tmp_path / "single")
    single.run()
    want = torch.load(tmp_path / "single", weights_only=True)
    scale = max(g.abs().max().item() for g in want.values())
    for rank in (0, 1):  # every rank holds the same averaged gradient
        got = torch.load(f"{out}.rank{rank}", weights_only=True)
        assert got.keys() == want.keys()
        assert len(want) == sum(p.requires_grad for p in single.model.parameters())
        for k, g in want.items():
            torch.testing.assert_close(got[k], g, rtol=1e-4, atol=1e-6 * scale)
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_and_exits_cleanly(data_root, tmp_path):
    """As `timeout`, a scheduler or Ctrl-C do it: the DataLoader workers get the signal too."""
    run = tmp_path / "sig"
    cfg = ROOT / "configs" / "tiny.yaml"
    args = [sys.executable, "train.py", str(cfg), "data.kind=folder", f"data.root={data_root}",
            "data.train_split=tr", "data.valid_split=cv", "data.segment_seconds=0.25",
            "data.num_workers=1", "model.nf=8", "model.ch_mult=[1,2,2]", "model.attn_resolutions=[128]",
            f"train.run_dir={run}", "train.batch_size=1", "train.max_steps=100000",
            "train.log_every=1", "train.ckpt_every=100000", "train.val_every=0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 240
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    step = safe_load(run / "last.pt")["step"]
    assert step >= 3 and f"stopped at step {step}" in out


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_training_steps_run(data_root, tmp_path, amp):
    tr = Trainer(tiny_cfg(data_root, tmp_path / amp, "train.max_steps=2", f"train.amp={amp}",
                          "train.val_sep_items=0"))
    before = [p.detach().clone() for p in tr.model.parameters()]
    tr.run()
    assert len(losses(tmp_path / amp)) == 2 and all(math.isfinite(x) for x in losses(tmp_path / amp))
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    assert tr.scaler.is_enabled() == (amp == "fp16")
    assert safe_load(tmp_path / amp / "last.pt")["scaler"] is not None


@pytest.mark.parametrize("kind", ["demucs", "diffsep"])
def test_stereo_music_trains_and_validates_on_synthetic_stems(tmp_path, kind):
    from diffsep.data.synth_music import write_corpus

    write_corpus(tmp_path / "music", n_train=5, n_test=1, seconds=1.0, sample_rate=8000)
    music = ["data.kind=musdb", "data.train_split=train", "data.valid_split=valid", "data.valid_tracks=[track002]",
             "model.audio_channels=2", "model.n_src=4", "loss.fixed_order=true", "train.max_steps=2"]
    if kind == "diffsep":
        cfg = tiny_cfg(tmp_path / "music", tmp_path / "run", *music)
    else:  # a Demucs config has no DiffSep section
        cfg = load_config(ROOT / "configs" / "demucs_tiny.yaml", [
            f"data.root={tmp_path / 'music'}", "data.segment_seconds=0.25", "data.num_workers=0",
            "data.sample_rate=8000", f"train.run_dir={tmp_path / 'run'}", "train.batch_size=2",
            "train.accumulate=2", "train.log_every=1", "train.ckpt_every=1", "train.val_every=0",
            "train.val_batches=1", "train.val_sep_items=1", "optim.ema_decay=0.9", "demucs.channels=4",
            "demucs.depth=2", "demucs.lstm_layers=1", *music])
    assert Trainer(cfg).run() == 2
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert math.isfinite(rec["val_loss"]) and math.isfinite(rec["val_si_sdri"])
    cfg = safe_load(tmp_path / "run" / "last.pt")["config"]
    assert cfg["model"]["kind"] == kind and cfg["model"]["audio_channels"] == 2


def test_monitor_sets_read_other_roots_test_split(data_root, tmp_path):
    """data.monitor_sets {name: root} monitors each root's test split under its own name, the very
    items a monitor split of that root gives; a name that is also a monitor split is refused."""
    from diffsep.config.build import build_monitor_sets
    from diffsep.config.settings import ConfigError

    cfg = tiny_cfg(data_root, tmp_path / "r", "data.test_split=cv", "data.monitor_splits=[cv]",
                   f"data.monitor_sets={{other: '{data_root}'}}", "data.monitor_seconds=0")
    sets = build_monitor_sets(cfg)
    assert set(sets) == {"cv", "other"}
    assert [it.name for it in sets["other"].items] == [it.name for it in sets["cv"].items] != []
    with pytest.raises(ConfigError, match="also data.monitor_splits"):
        build_monitor_sets(tiny_cfg(data_root, tmp_path / "r", "data.monitor_splits=[cv]",
                                    f"data.monitor_sets={{cv: '{data_root}'}}"))
