"""The GPU check (``diffsep bench gpu``) on CPU: CI never has a GPU, so these keep its plumbing from
rotting: the plan, the runner's statuses and timeouts, the report files, and a real dry run of the
steps only this check exercises (torchrun training on a corpus written on the spot, a bench)."""
import argparse
import json
import socket
import sys

import pytest
import torch

from diffsep.bench import gpu_check as gc
from diffsep.bench import gpu_report, gpu_steps
from diffsep.cli.benchmarks import main as bench

STEPS = ["cuda-tests", "score-fp32", "score-bf16", "score-bf16-channels-last", "train-fp32", "train-bf16",
         "train-bf16-channels-last", "all-reduce", "torchrun-train", "demo", "separate"]


def report(out):
    data = json.loads((out / "gpu_report.json").read_text())
    return data, (out / "gpu_report.md").read_text(), {s["name"]: s for s in data["steps"]}


def test_the_gpu_plan_and_its_dry_run_are_the_same_steps(tmp_path):
    repo = gc.repo_root()
    cuda = gc.build_plan(gc.PlanSettings("cuda", False, tmp_path, repo))
    dry = gc.build_plan(gc.PlanSettings("cpu", True, tmp_path, repo))
    assert [s.name for s in cuda] == [s.name for s in dry] == STEPS
    for s in cuda:
        assert any("cuda" in a or a == "nccl" for a in s.cmd), s.name
        assert s.timeout <= 150
    for s in dry:
        assert not any("cuda" in a for a in s.cmd[1:]), s.name
        assert s.env["OMP_NUM_THREADS"] == "1"
    c, d = {s.name: s.cmd for s in cuda}, {s.name: s.cmd for s in dry}
    tests = c["cuda-tests"]
    assert tests[tests.index("-k") + 1] == "cuda" and all((repo / f).is_file() for f in tests if f.endswith(".py"))
    assert "tests/test_score_model.py" in tests
    assert c["all-reduce"][-1] == "nccl" and d["all-reduce"][-1] == "gloo"
    assert "--nproc_per_node=1" in c["torchrun-train"] and "train.max_steps=200" in c["torchrun-train"]
    assert "--channels-last" in c["score-bf16-channels-last"] and "train.amp=bf16" in c["train-bf16"]


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    py = sys.executable
    plan = [gc.Step("first", "prints a number", [py, "-c", "print('value 42')"], 30,
                    parse=lambda out: {"value": 42.0} if "value 42" in out else {}, expects=("value",)),
            gc.Step("broken", "raises", [py, "-c", "raise RuntimeError('the kernel broke')"], 30),
            gc.Step("slow", "sleeps past its timeout", [py, "-c", "import time; time.sleep(60)"], 1.0),
            gc.Step("no-package", "imports a package this machine lacks", [py, "-c", "import no_such_package_xyz"], 30),
            gc.Step("no-numbers", "exits 0 without its numbers", [py, "-c", "print('hello')"], 30, expects=("value",)),
            gc.Step("needs-missing", "needs a module that is missing", [py, "-c", "pass"], 30,
                    needs=("no_such_package_xyz",)),
            gc.Step("last", "still runs", [py, "-c", "print('done')"], 30)]
    monkeypatch.setattr(gc, "build_plan", lambda settings: plan)
    out = tmp_path / "report"
    assert bench(["gpu", "--out", str(out), "--dry-run", "--work", str(tmp_path / "work")]) == 1
    data, md, steps = report(out)
    assert {n: s["status"] for n, s in steps.items()} == {
        "first": "ok", "broken": "failed", "slow": "timeout", "no-package": "skipped", "no-numbers": "failed",
        "needs-missing": "skipped", "last": "ok"}
    assert data["summary"] == {"ok": 2, "failed": 2, "skipped": 2, "timeout": 1}
    assert steps["first"]["numbers"] == {"value": 42.0} and steps["last"]["tail"] == "done"
    assert "RuntimeError: the kernel broke" in steps["broken"]["reason"] and steps["broken"]["returncode"] == 1
    assert steps["slow"]["seconds"] < 30
    assert "no_such_package_xyz" in steps["no-package"]["reason"]
    assert "lacks value" in steps["no-numbers"]["reason"]
    for name, s in steps.items():
        assert s["command"] and f"| {name} | {s['status']} |" in md
    assert "### broken: failed" in md and "the kernel broke" in md
    assert "===== broken" in (out / "gpu_check.log").read_text()


def test_steps_past_the_budget_are_skipped(tmp_path):
    steps = [gc.Step("a", "a", [sys.executable, "-c", "pass"], 30)]
    results = gc.run_steps(steps, tmp_path, budget=0, echo=lambda line: None)
    assert results[0].status == "skipped" and "budget" in results[0].reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_every_step_is_skipped_with_the_reason(tmp_path):
    out = tmp_path / "report"
    assert bench(["gpu", "--out", str(out), "--device", "cuda", "--work", str(tmp_path / "work")]) == 1
    data, md, steps = report(out)
    assert list(steps) == STEPS and data["dry_run"] is False
    assert all(s["status"] == "skipped" and "CUDA is not available" in s["reason"] for s in steps.values())


def test_all_reduce_check_on_gloo(monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0").items():
        monkeypatch.setenv(k, v)
    assert gpu_steps.all_reduce_check("gloo") == 0
    assert gpu_report.parse_all_reduce(capsys.readouterr().out)["world_size"] == 1
    assert not torch.distributed.is_initialized()


def bench_args(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def run_bench(module, argv):
    # no --threads: changing torch's thread count in this process (even back) makes later LU
    # solves (fast_bss_eval's SDR in test_metrics) fail with "Pivots given to lu_solve" on torch 2.13
    return module.run(bench_args(module, argv))


def test_the_bench_outputs_are_read_back(capsys):
    from diffsep.bench import network_speed

    assert run_bench(network_speed, ["--device", "cpu", "--nf", "8", "--seconds", "0.25", "--repeat", "1"]) == 0
    score = gpu_report.parse_score(capsys.readouterr().out)
    assert set(score) == {"params", "forward_s", "forward_peak_mib", "forward_backward_s", "forward_backward_peak_mib"}
    # the formats of the demo, the separation bench, pytest and torchrun's worker (as they print them)
    demo = ("model diffsep-small: SI-SDR 1.49 dB, SI-SDRi 1.35 dB (mean of 2 sources); 5.1 s of audio in 2.28 s "
            "(real-time factor 0.45, 3 network evaluations)")
    assert gpu_report.parse_demo(demo) == {"si_sdr": 1.49, "si_sdri": 1.35, "seconds": 2.28, "rtf": 0.45, "nfe": 3}
    sep = ("  length   NFE      time      RTF  base MiB  peak MiB peak-base\n"
           "     10s    60     1.23s    0.123      1234      2345      1111\n"
           "     60s   420     7.20s    0.120      1234      2400      1166\n")
    assert gpu_report.parse_separate(sep) == {"rtf_10s": 0.123, "peak_mib_10s": 2345, "nfe_10s": 60, "rtf_60s": 0.12,
                                      "peak_mib_60s": 2400, "nfe_60s": 420, "rtf": 0.12}
    assert gpu_report.parse_pytest("....\n4 passed, 47 deselected in 3.21s\n") == {"passed": 4, "deselected": 47}
    assert gpu_report.parse_pytest("F.\n1 failed, 1 passed, 2 errors in 1s") == {"failed": 1, "passed": 1, "error": 2}


def test_the_channels_last_training_bench(monkeypatch, capsys):
    from diffsep.bench import training_speed
    from diffsep.training import trainer

    monkeypatch.setattr(trainer, "Trainer", trainer.Trainer)  # restored afterwards
    gpu_steps.use_channels_last_trainer()
    assert run_bench(training_speed, ["--config", str(gc.repo_root() / "configs/tiny.yaml"), "--steps", "1",
                                      "data.segment_seconds=0.25", "train.batch_size=1", "train.device=cpu"]) == 0
    numbers = gpu_report.parse_train_bench(capsys.readouterr().out)
    assert numbers["channels_last_weights"] > 0 and numbers["steps_per_s"] > 0 and numbers["peak_mib"] > 0


def test_the_cpu_dry_run_writes_a_report_with_every_step(tmp_path):
    """The costliest plumbing for real (a corpus written on the spot, torchrun with gloo, the training
    command, its metrics read back); the other steps are reported as not selected. All of them:
    ``python -m diffsep.bench gpu --out DIR --dry-run``, about two minutes on 2 cores."""
    out = tmp_path / "report"
    assert bench(["gpu", "--out", str(out), "--dry-run", "--only", "torchrun-train"]) == 0
    data, md, steps = report(out)
    assert list(steps) == STEPS and data["dry_run"] is True and data["device"] == "cpu"
    assert all(s["status"] in gpu_report.STATUSES and f"| {n} | {s['status']} |" in md for n, s in steps.items())
    train = steps["torchrun-train"]
    assert train["status"] == "ok", train["tail"]
    assert train["numbers"]["steps"] == 3 and train["numbers"]["checkpoint"] is True
    assert train["numbers"]["steps_per_s"] > 0 and "val_loss" in train["numbers"]
    assert "torch.distributed.run" in train["command"]
    assert all(steps[n]["status"] == "skipped" and "not selected" in steps[n]["reason"]
               for n in STEPS if n != "torchrun-train")
    assert data["environment"]["torch"] == torch.__version__
