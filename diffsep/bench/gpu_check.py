"""GPU check: CUDA tests, benches in fp32 / bf16 / channels-last, torchrun training, demo, in one run.

    python -m diffsep.bench gpu --out REPORT_DIR          on a machine with a GPU (under 5 minutes)
    tools/gpu_check.sh REPORT_DIR                         the same
    python -m diffsep.bench gpu --out DIR --dry-run       the same plan on CPU with tiny sizes (CI)

CI has no GPU, so this is what to run when one is lent: the tests that have CUDA cases
(``pytest -k cuda``), the score-network bench and the training bench in fp32, bf16 and bf16 with
channels-last, an all-reduce under torchrun (NCCL, one process), 200 steps of configs/tiny.yaml under
torchrun on a small corpus written on the spot (wsj0-mix layout, so no data set is needed), the demo
and the separation bench on CUDA (under torchrun the trainer makes its process group also with one
process, so training runs the DDP code path on NCCL). Each step is a subprocess of this Python with its own timeout,
inside one overall budget (--budget); a step that fails, times out or cannot run (the GPU machines may
lack soundfile, omegaconf, pytest ...: put them on PYTHONPATH) is reported with the reason and the
tail of its output, and the steps after it still run. The numbers each step prints (times, steps/s,
real-time factors, peak memory: torch.cuda.max_memory_allocated inside the benches) are read back.

Writes REPORT_DIR/gpu_report.md, gpu_report.json (per step: name, command, status ok | failed |
skipped | timeout, seconds, reason, numbers, tail of the output), gpu_check.log (every step's whole
output) and demo.png. Exit status 0 when every selected step passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .gpu_report import (environment, importable, numbers_line, parse_all_reduce,
                         parse_demo, parse_pytest, parse_score, parse_separate, parse_train_bench,
                         parse_training_run, write_report)
from .gpu_steps import ALL_REDUCE, CHANNELS_LAST_BENCH, write_corpus

BUDGET_S = 255.0  # steps; with start-up and a timed-out step's stopping (<= 30 s), under 5 minutes
TAIL_LINES = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_report.md / .json (created)")
    p.add_argument("--device", default=None, help="cuda (default) | cuda:N | cpu (cpu implies --dry-run sizes)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes, on CPU unless --device says otherwise: checks the plumbing (CI)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all steps together")
    p.add_argument("--only", default="", help="comma-separated step names or globs to run (others: skipped)")
    p.add_argument("--skip", default="", help="comma-separated step names or globs not to run")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch folder for the corpus, runs and outputs (default: a temporary one, removed)")
    p.add_argument("--list", action="store_true", help="print the plan (names and commands) and exit")


@dataclass
class Step:
    name: str
    what: str  # one line for the report
    cmd: list[str]
    timeout: float
    parse: Callable[[str], dict] = lambda out: {}  # numbers from the output
    expects: tuple[str, ...] = ()  # numbers that must be found, else the step failed
    needs: tuple[str, ...] = ()  # modules the step cannot run without (checked before it runs)
    prepare: Callable[[], None] | None = None  # runs in this process first (e.g. write the corpus)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    name: str
    what: str
    command: str
    status: str
    seconds: float = 0.0
    returncode: int | None = None
    reason: str = ""
    numbers: dict = field(default_factory=dict)
    tail: str = ""


# ---------------------------------------------------------------------------------------- the plan

@dataclass
class PlanSettings:
    device: str  # cuda | cuda:N | cpu
    tiny: bool  # dry-run sizes
    work: Path  # scratch folder
    repo: Path  # where configs/ and tests/ are
    python: str = sys.executable


def build_plan(s: PlanSettings) -> list[Step]:
    """The steps, in the order they run (most telling first, so a spent budget drops the least)."""
    py, dev, tiny = s.python, s.device, s.tiny
    cuda = dev.startswith("cuda")
    steps = [_tests_step(s)]

    # score network: forward and forward+backward, three precisions / layouts
    size = (["--nf", "8", "--seconds", "0.25", "--batch", "1", "--repeat", "1"] if tiny
            else ["--nf", "64", "--seconds", "4", "--batch", "4", "--repeat", "5"])
    for name, flags in (("fp32", []), ("bf16", ["--dtype", "bfloat16"]),
                        ("bf16-channels-last", ["--dtype", "bfloat16", "--channels-last"])):
        steps.append(Step(f"score-{name}", f"score-network bench, {name}: forward, forward+backward, peak memory",
                          [py, "-m", "diffsep.bench", "score", "--device", dev, *size, *flags], 60,
                          parse_score, expects=("forward_s", "forward_backward_s", "forward_backward_peak_mib")))

    # training: optimizer steps/s on synthetic batches (no data files)
    config, size = (("configs/tiny.yaml", ["--steps", "1", "data.segment_seconds=0.25",
                                           "train.batch_size=1", "train.accumulate=1"]) if tiny
                    else ("configs/wsj0_2mix.yaml", ["--steps", "10"]))
    bench = ["train", "--config", config, *size, f"train.device={dev}"]
    plain = [py, "-m", "diffsep.bench"]
    for name, prefix, amp in (("fp32", plain, "none"), ("bf16", plain, "bf16"),
                              ("bf16-channels-last", [py, "-c", CHANNELS_LAST_BENCH], "bf16")):
        steps.append(Step(f"train-{name}", f"training bench ({config}), {name}: optimizer steps/s, peak memory",
                          [*prefix, *bench, f"train.amp={amp}"], 90, parse_train_bench,
                          expects=("step_s", "steps_per_s", "peak_mib")))

    # torchrun: a collective on the backend training uses, then 200 steps of the tiny config
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    backend = "nccl" if cuda else "gloo"
    steps.append(Step("all-reduce", f"torchrun, one process: init_process_group({backend!r}) and all_reduce",
                      [*torchrun, "--no-python", py, "-c", ALL_REDUCE, backend], 60, parse_all_reduce,
                      expects=("all_reduce_ms",)))
    corpus, run_dir = s.work / "corpus", s.work / "torchrun-tiny"
    n_steps = 3 if tiny else 200
    train = [*torchrun, "-m", "diffsep", "train", "configs/tiny.yaml", f"data.root={corpus}",
             f"train.run_dir={run_dir}", f"train.max_steps={n_steps}", f"train.device={dev}", "train.resume=never",
             f"train.ckpt_every={n_steps}", "train.val_every=0", "train.val_batches=1"]
    train += (["train.log_every=1", "train.batch_size=2", "data.segment_seconds=0.25", "data.num_workers=0",
               "train.val_sep_items=0"] if tiny
              else ["train.log_every=20", "data.num_workers=2", "train.val_sep_items=1"])
    steps.append(Step("torchrun-train", f"torchrun --nproc_per_node=1 train configs/tiny.yaml, {n_steps} steps on "
                      f"{dev} ({backend} backend) on a corpus written on the spot",
                      train, 60 if tiny else 150, lambda out: parse_training_run(out, run_dir),
                      expects=("steps", "steps_per_s"),
                      prepare=lambda: write_corpus(corpus, n_train=4 if tiny else 48, seconds=0.5 if tiny else 1.25)))

    # inference: the demo (bundled default model) and the separation bench
    demo = [py, "-m", "diffsep", "separate", "--demo", "-o", str(s.work / "demo"), "--device", dev, "--quiet"]
    steps.append(Step("demo", f"separate --demo on {dev}: SI-SDRi against the references, real-time factor",
                      demo + (["--steps", "1"] if tiny else []), 60, parse_demo, expects=("si_sdri", "rtf")))
    sep = [py, "-m", "diffsep.bench", "separate", "--device", dev]
    sep += (["--nf", "8", "--lengths", "0.5", "--steps", "1"] if tiny
            else ["--nf", "64", "--lengths", "10", "60"])
    steps.append(Step("separate", f"separation bench, an untrained DiffSep nf={sep[sep.index('--nf') + 1]}: RTF and "
                      "peak memory against input length", sep, 90, parse_separate, expects=("rtf",)))
    if tiny:  # one thread each (two threads on a busy 2-core CI machine run several times slower), more time
        for st in steps:
            st.env.setdefault("OMP_NUM_THREADS", "1")
            st.timeout *= 2
    return steps


def _tests_step(s: PlanSettings) -> Step:
    """pytest -k cuda over the test files that have CUDA cases (-k cpu in a dry run: the same tests)."""
    device_case = re.compile(r"\bDEVICES\b|[\"']cuda")
    files = sorted(str(p.relative_to(s.repo)) for p in (s.repo / "tests").glob("test_*.py")
                   if p.name != "test_gpu_check.py" and device_case.search(p.read_text(errors="replace")))
    kind = "cuda" if s.device.startswith("cuda") else "cpu"
    return Step("cuda-tests", f"pytest -k {kind} on the tests with device cases ({len(files)} files)",
                [s.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", kind, *files], 120,
                parse_pytest, expects=("passed",), needs=("pytest",))


# A training-bench run with the model in channels-last layout: the bench builds its Trainer when it
# runs, so a Trainer whose model is converted after construction is swapped in first.
# -------------------------------------------------------------------------------------- execution

def run_step(step: Step, cwd: Path, timeout: float, log=None) -> Result:
    """Run one step as a subprocess in its own process group (a timeout ends the whole group:
    torchrun's workers, the separation bench's children)."""
    res = Result(step.name, step.what, shlex.join(step.cmd), "failed")
    missing = [m for m in step.needs if not importable(m)]
    if missing:
        res.status, res.reason = "skipped", f"needs {', '.join(missing)}, not installed here"
        return res
    t0 = time.perf_counter()
    try:
        if step.prepare is not None:
            step.prepare()
    except Exception as e:  # reported; the other steps still run
        res.seconds, res.reason = round(time.perf_counter() - t0, 2), f"preparing: {type(e).__name__}: {e}"
        return res
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    timed_out = False
    try:
        proc = subprocess.Popen(step.cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        res.seconds, res.reason = round(time.perf_counter() - t0, 2), f"could not start: {e}"
        return res
    try:
        out, _ = proc.communicate(timeout=max(timeout - (time.perf_counter() - t0), 1.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        out = _stop(proc)
    res.seconds = round(time.perf_counter() - t0, 2)
    text = _screen(out.decode(errors="replace"))
    res.returncode, res.tail = proc.returncode, _tail(text)
    if log is not None:
        log.write(f"===== {step.name} ({res.seconds:.1f} s, exit {proc.returncode}) $ {res.command}\n{text}\n")
        log.flush()
    try:
        res.numbers = step.parse(text)
    except Exception as e:  # a parser that breaks on odd output
        res.numbers = {"parse_error": f"{type(e).__name__}: {e}"}
    if timed_out:
        res.status, res.reason = "timeout", f"still running after {timeout:.0f} s; stopped"
    elif proc.returncode == 0:
        lacking = [k for k in step.expects if k not in res.numbers]
        res.status = "failed" if lacking else "ok"
        res.reason = f"exit 0, but the output lacks {', '.join(lacking)}" if lacking else ""
    else:
        module = _missing_module(text)
        if module is not None:
            res.status, res.reason = "skipped", f"needs {module}, not installed here"
        else:
            res.status, res.reason = "failed", f"exit {proc.returncode}: {_error_line(text)}"
    return res


def _stop(proc: subprocess.Popen) -> bytes:
    # torchrun starts its workers in sessions of their own and stops them on SIGTERM (within 30 s)
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.communicate(timeout=wait)[0] or b""
        except subprocess.TimeoutExpired:
            continue
    return b""


def _missing_module(text: str) -> str | None:
    """The third-party module whose absence stopped the step (not one of ours: that is a bug)."""
    found = re.findall(r"No module named '([\w.]+)'", text)
    if not found:
        return None
    top = found[-1].split(".")[0]
    return None if top == "diffsep" or importable(top) else top


def _error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^([\w.]*(Error|Exception|Interrupt)\b|error:|FAILED|E\s)", ln):
            return ln[:300]
    return lines[-1][:300] if lines else "(no output)"


def _screen(text: str) -> str:
    """What a terminal would show: a progress bar's carriage-return updates collapse to the last."""
    return "\n".join(ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in text.replace("\r\n", "\n").split("\n"))


def _tail(text: str) -> str:
    return "\n".join(ln[-400:] for ln in text.strip().split("\n")[-TAIL_LINES:])


def run_steps(steps: list[Step], cwd: Path, budget: float, selected: Callable[[str], bool] = lambda n: True,
              log=None, echo=print) -> list[Result]:
    deadline = time.perf_counter() + budget
    results = []
    for i, step in enumerate(steps):
        left = deadline - time.perf_counter()
        if not selected(step.name):
            r = Result(step.name, step.what, shlex.join(step.cmd), "skipped", reason="not selected (--only / --skip)")
        elif left < 5:
            r = Result(step.name, step.what, shlex.join(step.cmd), "skipped",
                       reason=f"the {budget:.0f} s budget was spent before this step")
        else:
            r = run_step(step, cwd, min(step.timeout, left), log)
        results.append(r)
        echo(f"[{i + 1:2d}/{len(steps)}] {r.name:<24} {r.status:<8} {r.seconds:6.1f} s  "
             + (numbers_line(r.numbers) if r.status == "ok" else r.reason))
    return results


def repo_root() -> Path:
    """The checkout this module is in (configs/, tests/), else the current folder."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "configs").is_dir() else Path.cwd()


def _matcher(only: str, skip: str) -> Callable[[str], bool]:
    def pats(s):
        return [p.strip() for p in s.split(",") if p.strip()]

    only_p, skip_p = pats(only), pats(skip)
    return lambda name: ((not only_p or any(fnmatch.fnmatch(name, p) for p in only_p))
                         and not any(fnmatch.fnmatch(name, p) for p in skip_p))


def run(args) -> int:
    device = args.device or ("cpu" if args.dry_run else "cuda")
    tiny = args.dry_run or not device.startswith("cuda")
    repo = repo_root()
    scratch = None
    if args.work is None:
        scratch = tempfile.TemporaryDirectory(prefix="diffsep-gpu-check-")
        work = Path(scratch.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    try:
        steps = build_plan(PlanSettings(device, tiny, work, repo))
        if args.list:
            for st in steps:
                print(f"{st.name:<24} {shlex.join(st.cmd)}")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        env = environment(device)
        print(f"diffsep GPU check{' (dry run)' if tiny else ''}: {len(steps)} steps on {device}, "
              f"budget {args.budget:.0f} s, report in {out}", flush=True)
        selected = _matcher(args.only, args.skip)
        if device.startswith("cuda") and not env["cuda_available"]:
            why = f"CUDA is not available (torch {env['torch']}, built for CUDA {env['torch_cuda']})"
            results = [Result(s.name, s.what, shlex.join(s.cmd), "skipped", reason=why) for s in steps]
            print(why)
        else:
            with open(out / "gpu_check.log", "w") as log:
                results = run_steps(steps, repo, args.budget, selected, log,
                                    echo=lambda line: print(line, flush=True))
        demo_png = work / "demo" / "demo.png"
        if demo_png.is_file():
            (out / "demo.png").write_bytes(demo_png.read_bytes())
        meta = {"check": "diffsep GPU check", "device": device, "dry_run": tiny, "started": started,
                "seconds": round(time.perf_counter() - t0, 1), "budget_s": args.budget, "environment": env}
        md, js = write_report(out, meta, results)
        print(f"wrote {md} and {js}")
        ran = [r for r in results if selected(r.name)]
        return 0 if ran and all(r.status == "ok" for r in ran) else 1
    finally:
        if scratch is not None:
            scratch.cleanup()
