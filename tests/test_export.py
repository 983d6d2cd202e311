import subprocess
import sys

import torch

from conftest import make_tiny_checkpoint, normalised_example
from diffsep.storage.checkpoint import safe_load
from diffsep.inference.packaging import exported
from diffsep.inference.loading import load_trained, make_separator


def _estimate(trained, mix):
    sep = make_separator(trained, sampler={"kind": "ode", "steps": 3})
    return sep(mix)


def test_fp16_export_keeps_the_ema_weights_to_half_precision_and_drops_training_state(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "full.pt")
    full = safe_load(path)
    full["ema"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in full["model"].items()}
    full["optimizer"] = {"state": {}, "param_groups": []}
    full["config"]["data"]["root"] = "/home/someone/corpus"
    small = exported(full, fp16=True)
    assert "optimizer" not in small and small["ema"] is None and small["exported"]["weights"] == "ema"
    assert small["config"]["data"]["root"] == "" and small["config"]["data"]["sample_rate"] == 8000
    for k, v in small["model"].items():
        ref = full["ema"][k]
        assert v.dtype == (torch.float16 if ref.is_floating_point() else ref.dtype)
        torch.testing.assert_close(v.float(), ref.float(), rtol=1e-3, atol=1e-4)  # fp16 rounding only


def test_fp16_export_separates_exactly_like_the_model_with_rounded_weights(tmp_path):
    """Storage in fp16 is the only change: widened on load, the weights equal the original ones
    rounded to fp16, and so do the estimates (same sampler noise)."""
    path = make_tiny_checkpoint(tmp_path / "full.pt")
    full = safe_load(path)
    torch.save(exported(full, fp16=True), tmp_path / "small.pt")
    rounded = {k: v.half().float() if v.is_floating_point() else v for k, v in full["ema"].items()}
    torch.save({**full, "ema": rounded}, tmp_path / "rounded.pt")
    _, mix = normalised_example(2, 2048)
    mix = mix.float()
    a, b = _estimate(load_trained(tmp_path / "rounded.pt"), mix), _estimate(load_trained(tmp_path / "small.pt"), mix)
    assert b.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, _estimate(load_trained(path), mix))  # the rounding is not a no-op


def test_export_command_writes_a_smaller_file_and_reports_it(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "full.pt")
    out = tmp_path / "x.pt"
    r = subprocess.run([sys.executable, "-m", "diffsep", "export", str(path), str(out), "--fp16"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "float16" in r.stdout and out.stat().st_size < 0.75 * path.stat().st_size
    bad = subprocess.run([sys.executable, "-m", "diffsep", "export", str(tmp_path / "nope.pt"), str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope.pt" in bad.stderr


def test_export_keeps_no_path_of_the_training_machine(tmp_path):
    """Data folders are cleared, monitor sets dropped, absolute run and checkpoint paths cut to
    their names (POSIX and Windows alike), relative ones kept; the model still loads."""
    path = make_tiny_checkpoint(tmp_path / "full.pt")
    full = safe_load(path)
    full["config"]["data"].update(root="/home/a/corpus", monitor_root="/home/a/shared/corpus",
                                  monitor_sets={"libri_tt": "/home/a/realspeech/libri_tt"})
    full["config"].setdefault("train", {}).update(run_dir="/home/a/runs/ctn5", init_from="C:\\runs\\stage4\\last.pt",
                                   resume="auto", val_warm_start="convtasnet-voices")
    small = exported(full)
    data, train = small["config"]["data"], small["config"]["train"]
    assert data["root"] == data["monitor_root"] == "" and data["monitor_sets"] == {}
    assert train["run_dir"] == "ctn5" and train["init_from"] == "last.pt"
    assert train["resume"] == "auto" and train["val_warm_start"] == "convtasnet-voices"
    assert "/home/a" in str(full["config"])  # the source is not modified
    assert not any(s in str(small["config"]) for s in ("/home/a", "C:\\\\"))
    torch.save(small, tmp_path / "small.pt")
    load_trained(tmp_path / "small.pt")
    full["config"]["train"]["init_from"] = "runs/stage4/last.pt"
    assert exported(full)["config"]["train"]["init_from"] == "runs/stage4/last.pt"
