"""What the GPU check runs in its own steps besides the command lines: the training bench with
the model in channels-last layout, an all-reduce in a (one-process) torchrun group, and a small
wsj0-mix layout corpus written with the standard library (no soundfile needed)."""
from __future__ import annotations

import math
import os
import sys
import time
import wave
from array import array
from pathlib import Path

CHANNELS_LAST_BENCH = ("import sys; from diffsep.bench.gpu_steps import use_channels_last_trainer; "
                       "use_channels_last_trainer(); from diffsep.cli.benchmarks import main; "
                       "sys.exit(main(sys.argv[1:]))")

ALL_REDUCE = "import sys; from diffsep.bench.gpu_steps import all_reduce_check; sys.exit(all_reduce_check(sys.argv[1]))"


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


