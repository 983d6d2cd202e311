import math
import os
from pathlib import Path

# One torch thread per test process (set before torch is imported; changing it later in-process
# breaks fast_bss_eval's LU solves): the tests' tiny networks gain nothing from a second thread,
# and with the suite spread over both cores (pytest -n 2) two threads each would oversubscribe them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

DATA = Path(__file__).parent / "data"
REFERENCE_FIXTURE = Path(os.environ.get("DIFFSEP_REFERENCE_FIXTURE", DATA / "reference_nf16_k2.pt"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def speech_like(K: int, N: int, seed: int = 0, fs: int = 8000, dtype=torch.float64) -> torch.Tensor:
    """K distinct harmonic sources with syllable-rate envelopes plus a little noise. -> (1, K, N)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(N, dtype=dtype) / fs
    rows = []
    for k in range(K):
        f0 = 110.0 + 70.0 * k
        env = 0.6 + 0.4 * torch.sin(2 * math.pi * (3.0 + k) * n + k)
        tone = sum(torch.sin(2 * math.pi * h * f0 * n + 0.3 * h * k) / h for h in range(1, 5))
        rows.append(env * tone + 0.05 * torch.randn(N, generator=g, dtype=dtype))
    return torch.stack(rows)[None]


def normalised_example(K: int, N: int, seed: int = 0, dtype=torch.float64):
    """(sources (1, K, N), mix (1, 1, N)) scaled so that the mixture has unit std."""
    s = speech_like(K, N, seed, dtype=dtype)
    mix = s.sum(1, keepdim=True)
    sd = mix.std()
    return s / sd, mix / sd


def diffsep_model(n_src: int = 2, head: str = "score_t", **net_kwargs):
    """The DiffSep family's model: a SpectralUNet (``net_kwargs``) under an output head."""
    from diffsep.core.sde import DiffSepSDE
    from diffsep.families.preconditioning import Preconditioned
    from diffsep.nets.spectral_unet import SpectralUNet

    return Preconditioned(SpectralUNet(n_src=n_src, **net_kwargs), head, DiffSepSDE(n_src))


@pytest.fixture(scope="session")
def reference_fixture():
    if not REFERENCE_FIXTURE.is_file():
        pytest.fail(f"reference fixture missing: {REFERENCE_FIXTURE}")
    from diffsep.storage.checkpoint import safe_load
    return safe_load(REFERENCE_FIXTURE)


def make_tiny_checkpoint(path: Path, n_src: int = 2, sample_rate: int = 8000, steps: int = 2) -> Path:
    """A small random DiffSep checkpoint in our format (fast enough for CLI tests)."""
    from diffsep.families import describe
    from diffsep.inference.packaging import save_model as save_checkpoint

    torch.manual_seed(0)
    model = diffsep_model(n_src, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                       init_scale=1.0)
    config = {"model": describe(model)["model"],
              "sde": {"gamma": 2.0, "sigma_min": 0.05, "sigma_max": 0.5, "T": 1.0},
              "sampler": {"kind": "pc", "steps": steps, "snr": 0.5, "corrector_steps": 1},
              "data": {"sample_rate": sample_rate}, "loss": {"fixed_order": False}}
    save_checkpoint(path, model, ema=model.state_dict(), config=config)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
