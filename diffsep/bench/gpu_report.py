"""The GPU check's numbers and report: what each step printed read back into numbers (the
benches' times and memory, steps/s, real-time factors, test counts), the machine's description, and
gpu_report.md / gpu_report.json."""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict
from pathlib import Path

STATUSES = ("ok", "failed", "skipped", "timeout")
PACKAGES = ("numpy", "scipy", "einops", "soundfile", "soxr", "omegaconf", "tqdm", "fast_bss_eval", "pesq",
            "pystoi", "matplotlib", "tensorboard", "huggingface_hub", "pytest")


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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



# ---------------------------------------------------------------------------------------- report

def environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "host": platform.node(),
           "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cpu_count": os.cpu_count(), "missing_packages": [m for m in PACKAGES if not importable(m)]}
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


def numbers_line(numbers: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())


def write_report(out: Path, meta: dict, results: list) -> tuple[Path, Path]:
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
        text = numbers_line(r.numbers) if r.status == "ok" else r.reason
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


