"""GPU check: CUDA tests, benches in fp32 / bf16 / channels-last, torchrun training, demo, in one run.

    python -m diffsep.bench gpu --out REPORT_DIR          on a machine with a GPU (under 5 minutes)
    tools/gpu_check.sh REPORT_DIR                         the same
    python -m diffsep.bench gpu --out DIR --dry-run       the same plan on CPU with tiny sizes (CI)

CI has no GPU, so this is what to run when one is lent: the tests that have CUDA cases
(``pytest -k cuda``), the score-network bench and the training bench in fp32, bf16 and bf16 with
channels-last, an all-reduce under torchrun (NCCL, one process), 200 steps of configs/tiny.yaml under
torchrun on a small corpus written on the spot (wsj0-mix layout, so no data set is needed), the demo
and the separation bench on CUDA. (With one process the trainer makes no process group, so NCCL
itself is exercised by the all-reduce step.) Each step is a subprocess of this Python with its own timeout,
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
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

STATUSES = ("ok", "failed", "skipped", "timeout")
BUDGET_S = 255.0  # steps; with start-up and a timed-out step's stopping (<= 30 s), under 5 minutes
TAIL_LINES = 30
# third-party packages the toolkit imports somewhere; the report says which are missing
PACKAGES = ("numpy", "scipy", "einops", "soundfile", "soxr", "omegaconf", "tqdm", "fast_bss_eval", "pesq",
            "pystoi", "matplotlib", "tensorboard", "huggingface_hub", "pytest")


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
CHANNELS_LAST_BENCH = ("import sys; from diffsep.bench.gpu_check import use_channels_last_trainer; "
                       "use_channels_last_trainer(); from diffsep.cli.benchmarks import main; "
                       "sys.exit(main(sys.argv[1:]))")

ALL_REDUCE = "import sys; from diffsep.bench.gpu_check import all_reduce_check; sys.exit(all_reduce_check(sys.argv[1]))"


def use_channels_last_trainer() -> None:
    import torch

    from ..training import trainer

    base = trainer.Trainer

    class ChannelsLastTrainer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps its parameters
            n = sum(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                    for p in self.model.parameters())
            print(f"channels-last: {n} 4-D weights in channels_last layout")

    trainer.Trainer = ChannelsLastTrainer


def all_reduce_check(backend: str) -> int:
    """Under torchrun: join the process group on ``backend`` and time all_reduce of 4 MiB."""
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    try:
        x = torch.ones(1 << 20, device=device)
        dist.all_reduce(x)  # warm-up (and the communicator's creation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, n = time.perf_counter(), 10
        for _ in range(n):
            dist.all_reduce(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / n * 1e3
        world = dist.get_world_size()
        ok = x[0].item() == world ** (n + 1)
        version = ".".join(map(str, torch.cuda.nccl.version())) if backend == "nccl" else "-"
        print(f"all_reduce backend={backend} world_size={world} device={device} nccl={version}: "
              f"{ms:.3f} ms per all_reduce of 4 MiB, result {'correct' if ok else 'WRONG'}")
        return 0 if ok else 1
    finally:
        dist.destroy_process_group()


def write_corpus(root: Path, n_train: int, seconds: float, sample_rate: int = 8000) -> Path:
    """ROOT/wav8k/min/{tr,cv,tt}/{mix,s1,s2}/itemNN.wav: per item two harmonic tones with a
    syllable-rate envelope, mix = s1 + s2 exactly, 16-bit PCM written with the standard library's
    ``wave`` (this process needs no soundfile)."""
    import torch

    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    for split, count in (("tr", n_train), ("cv", 2), ("tt", 2)):
        base = root / f"wav{sample_rate // 1000}k" / "min" / split
        for i in range(count):
            seed = len(split) * 1000 + i  # a different pair of voices per item
            pcm = []
            for k in range(2):
                f0, rate = 110.0 + 37.0 * ((seed * 7 + 13 * k) % 11) + 90.0 * k, 2.5 + k + 0.1 * (seed % 5)
                env = 0.6 + 0.4 * torch.sin(2 * math.pi * rate * t + k)
                tone = sum(torch.sin(2 * math.pi * h * f0 * t) / h for h in (1, 2, 3)) / 1.84
                pcm.append((0.4 * 32767 * env * tone).round().to(torch.int16))
            for name, x in (("s1", pcm[0]), ("s2", pcm[1]), ("mix", pcm[0] + pcm[1])):
                _write_wav(base / name / f"item{i:02d}.wav", x.tolist(), sample_rate)
    return root


def _write_wav(path: Path, samples: list[int], rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = array("h", samples)
    if sys.byteorder == "big":
        pcm.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


# ------------------------------------------------------------------------------------------ parsers

def _num(s: str) -> float:
    return float(s.replace(",", ""))


def parse_pytest(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", ln)]
    if not lines:
        return {}
    return {k if k != "errors" else "error": int(v) for v, k in re.findall(r"(\d+) (\w+)", lines[-1])
            if k in ("passed", "failed", "skipped", "error", "errors", "deselected", "xfailed", "xpassed")}


def parse_score(out: str) -> dict:
    d = {}
    m = re.search(r"params=([\d,]+)", out)
    if m:
        d["params"] = int(_num(m.group(1)))
    for key, label in (("forward", r"forward"), ("forward_backward", r"forward\+backward")):
        m = re.search(rf"^{label}\s+median\s+([\d.]+) s.*?peak memory ([\d,.]+) MiB", out, re.M)
        if m:
            d[f"{key}_s"], d[f"{key}_peak_mib"] = _num(m.group(1)), _num(m.group(2))
    return d


def parse_train_bench(out: str) -> dict:
    d = {}
    m = re.search(r"optimizer step\s+median ([\d.]+) s\s+->\s+([\d.]+) steps/s, ([\d.]+) items/s", out)
    if m:
        d.update(step_s=_num(m.group(1)), steps_per_s=_num(m.group(2)), items_per_s=_num(m.group(3)))
    m = re.search(r"^peak memory ([\d,.]+) MiB", out, re.M)
    if m:
        d["peak_mib"] = _num(m.group(1))
    m = re.search(r"params=([\d,]+)", out)
    if m:
        d["params"] = int(_num(m.group(1)))
    m = re.search(r"channels-last: (\d+) 4-D weights", out)
    if m:
        d["channels_last_weights"] = int(m.group(1))
    return d


def parse_all_reduce(out: str) -> dict:
    m = re.search(r"all_reduce backend=(\w+) world_size=(\d+) .*?nccl=(\S+): ([\d.]+) ms", out)
    if not m:
        return {}
    d = {"backend": m.group(1), "world_size": int(m.group(2)), "all_reduce_ms": _num(m.group(4))}
    if m.group(3) != "-":
        d["nccl_version"] = m.group(3)
    return d


def parse_training_run(out: str, run_dir: Path) -> dict:
    """Steps/s from the run's metrics.jsonl (its "time" column: training only, not start-up or
    validation), the last loss and the validation scores."""
    d = {}
    m = re.search(r"stopped at step (\d+)", out)
    if m:
        d["steps"] = int(m.group(1))
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        timed = [r for r in rows if "time" in r and "loss" in r]
        if len(timed) >= 2 and timed[-1]["time"] > timed[0]["time"]:
            d["steps_per_s"] = round((timed[-1]["step"] - timed[0]["step"]) / (timed[-1]["time"] - timed[0]["time"]), 3)
        if timed:
            d["last_loss"] = round(timed[-1]["loss"], 5)
        for r in rows:
            for k in ("val_loss", "val_si_sdr"):
                if k in r:
                    d[k] = round(r[k], 4)
    d["checkpoint"] = (run_dir / "last.pt").is_file()
    return d


def parse_demo(out: str) -> dict:
    m = re.search(r"SI-SDR (-?[\d.]+) dB, SI-SDRi (-?[\d.]+) dB.*?in ([\d.]+) s "
                  r"\(real-time factor ([\d.]+), (\d+) network", out, re.S)
    if not m:
        return {}
    return {"si_sdr": _num(m.group(1)), "si_sdri": _num(m.group(2)), "seconds": _num(m.group(3)),
            "rtf": _num(m.group(4)), "nfe": int(m.group(5))}


def parse_separate(out: str) -> dict:
    rows = re.findall(r"^\s*([\d.]+)s\s+(\d+)\s+([\d.]+)s\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)\s*$", out, re.M)
    if not rows:
        return {}
    d = {}
    for length, nfe, secs, rtf, base, peak, _ in rows:
        tag = f"{_num(length):g}s"
        d[f"rtf_{tag}"], d[f"peak_mib_{tag}"], d[f"nfe_{tag}"] = _num(rtf), _num(peak), int(nfe)
    d["rtf"] = _num(rows[-1][3])
    return d


# -------------------------------------------------------------------------------------- execution

def run_step(step: Step, cwd: Path, timeout: float, log=None) -> Result:
    """Run one step as a subprocess in its own process group (a timeout ends the whole group:
    torchrun's workers, the separation bench's children)."""
    res = Result(step.name, step.what, shlex.join(step.cmd), "failed")
    missing = [m for m in step.needs if not _importable(m)]
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


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_module(text: str) -> str | None:
    """The third-party module whose absence stopped the step (not one of ours: that is a bug)."""
    found = re.findall(r"No module named '([\w.]+)'", text)
    if not found:
        return None
    top = found[-1].split(".")[0]
    return None if top == "diffsep" or _importable(top) else top


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
             + (_numbers_line(r.numbers) if r.status == "ok" else r.reason))
    return results


# ---------------------------------------------------------------------------------------- report

def environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "host": platform.node(),
           "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cpu_count": os.cpu_count(), "missing_packages": [m for m in PACKAGES if not _importable(m)]}
    if device.startswith("cuda") and torch.cuda.is_available():
        d = torch.device(device)
        props = torch.cuda.get_device_properties(d)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                   capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count(),
                   bf16_supported=torch.cuda.is_bf16_supported(),
                   nccl=".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            env["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def _numbers_line(numbers: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())


def write_report(out: Path, meta: dict, results: list[Result]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    data = {**meta, "summary": counts, "steps": [asdict(r) for r in results]}
    js = out / "gpu_report.json"
    js.write_text(json.dumps(data, indent=2) + "\n")

    env = meta["environment"]
    where = env.get("gpu") or ("CPU" if not meta["device"].startswith("cuda") else "no CUDA device")
    lines = [f"# diffsep GPU check{' (dry run)' if meta['dry_run'] else ''}", "",
             f"{meta['device']} · {where} · torch {env['torch']} (CUDA {env['torch_cuda']}) · Python {env['python']}"
             f" · {meta['started']} · {meta['seconds']:.0f} s (budget {meta['budget_s']:.0f} s)", "",
             "**" + ", ".join(f"{counts[s]} {s}" for s in STATUSES) + "**", ""]
    if env.get("gpu"):
        lines += [f"GPU: {env['gpu']}, {env['gpu_memory_gib']} GiB, compute capability {env['capability']}, "
                  f"driver {env.get('driver')}, NCCL {env.get('nccl')}, bf16 {env['bf16_supported']}", ""]
    if env["missing_packages"]:
        lines += [f"Packages not installed: {', '.join(env['missing_packages'])}", ""]
    lines += ["| step | status | seconds | numbers / reason |", "| --- | --- | ---: | --- |"]
    for r in results:
        text = _numbers_line(r.numbers) if r.status == "ok" else r.reason
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {text.replace('|', '/')} |")
    peaks = [(r.name, k, v) for r in results for k, v in r.numbers.items() if "peak_mib" in k]
    if peaks:
        lines += ["", "## Peak memory", "", "MiB; CUDA: torch.cuda.max_memory_allocated in the bench; CPU: "
                  "the process's maximum resident set size.", "", "| step | measure | MiB |", "| --- | --- | ---: |"]
        lines += [f"| {n} | {k} | {v:,.0f} |" for n, k, v in peaks]
    bad = [r for r in results  # and the skipped ones that ran (a missing package)
           if r.status in ("failed", "timeout") or (r.status == "skipped" and r.returncode is not None)]
    if bad:
        lines += ["", "## Steps that did not pass"]
        for r in bad:
            lines += ["", f"### {r.name}: {r.status}", "", r.reason, "", f"`{r.command}`", "", "```", r.tail, "```"]
    lines += ["", "## Commands", "", "Run from the repository root; the whole output of each is in gpu_check.log.", ""]
    lines += [f"- **{r.name}** ({r.what}): `{r.command}`" for r in results]
    md = out / "gpu_report.md"
    md.write_text("\n".join(lines) + "\n")
    return md, js


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
