import os
import pickle

import pytest
import torch

from diffsep.checkpoint import CheckpointError, save_checkpoint
from diffsep.inference import load_model
from diffsep.reference import from_reference, read_reference_config
from diffsep.score_model import ScoreModel
from conftest import DEVICES


def tiny(K=2, **kw):
    return ScoreModel(n_src=K, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(128,), **kw)


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("N", [1, 1001, 4097])
def test_shapes_any_sources_any_length(K, N):
    model = tiny(K).eval()
    x = torch.randn(2, K, N)
    with torch.no_grad():
        out = model(x, torch.tensor([0.3, 0.9]), x.sum(1, keepdim=True))
    assert out.shape == (2, K, N) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_rejects_mismatched_shapes():
    model = tiny(2)
    with pytest.raises(ValueError, match=r"x_t must be \(B, 2, N\)"):
        model(torch.randn(1, 3, 100), torch.ones(1), torch.randn(1, 1, 100))
    with pytest.raises(ValueError, match="mix must be"):
        model(torch.randn(1, 2, 100), torch.ones(1), torch.randn(1, 1, 99))


@pytest.mark.parametrize("device", DEVICES)
def test_follows_device_and_dtype(device):
    model = tiny(2).to(device=device, dtype=torch.float64).eval()
    x = torch.randn(1, 2, 500, device=device, dtype=torch.float64)
    with torch.no_grad():
        out = model(x, torch.tensor([0.5], device=device, dtype=torch.float64), x.sum(1, keepdim=True))
    assert out.device.type == device and out.dtype == torch.float64


def test_autocast_bfloat16_forward_is_close_to_float32():
    torch.manual_seed(0)
    model = tiny(2, init_scale=1.0).eval()
    x = torch.randn(1, 2, 3000)
    args = (x, torch.tensor([0.5]), x.sum(1, keepdim=True))
    with torch.no_grad():
        ref = model(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(*args)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert _rel_err(low, ref) < 0.1


def test_rejects_frequency_sizes_the_unet_cannot_halve():
    with pytest.raises(ValueError, match="n_fft=512 gives 257 frequency bins"):
        ScoreModel(n_fft=512)


def _rel_err(out, expected):
    return ((out - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("ema,key", [(True, "score_ema"), (False, "score_raw")])
def test_reference_equivalence(reference_fixture, ema, key):
    """The converted reference checkpoint reproduces the reference implementation's outputs."""
    model = from_reference(reference_fixture["checkpoint"], ema=ema)
    assert model.n_src == 2 and model.spec_factor == 0.33
    with torch.no_grad():
        out = model(**reference_fixture["inputs"])
    assert _rel_err(out, reference_fixture["expected"][key]) <= 1e-4


def test_reference_converter_reads_its_config_and_picks_ema(reference_fixture):
    ckpt = reference_fixture["checkpoint"]
    cfg = read_reference_config(ckpt)
    assert cfg["model"]["n_src"] == 2 and cfg["model"]["nf"] == 16
    assert cfg["sde"] == {"gamma": 2.0, "sigma_min": 0.05, "sigma_max": 0.5}
    raw, ema = from_reference(ckpt, ema=False), from_reference(ckpt)
    w_raw = raw.backbone.temb.dense_0.weight
    assert torch.equal(w_raw, ckpt["state_dict"]["score_model.backbone.all_modules.1.weight"])
    assert torch.equal(ema.backbone.temb.dense_0.weight, ckpt["ema"]["shadow_params"][3])
    # Fourier frequencies come from the file, not from a new random draw
    assert torch.equal(ema.backbone.temb.fourier.W, ckpt["ema"]["shadow_params"][2])


def test_reference_without_ema_state_falls_back_to_state_dict(reference_fixture):
    ckpt = {k: v for k, v in reference_fixture["checkpoint"].items() if k != "ema"}
    with torch.no_grad():
        out = from_reference(ckpt)(**reference_fixture["inputs"])
    assert _rel_err(out, reference_fixture["expected"]["score_raw"]) <= 1e-4
    broken = dict(reference_fixture["checkpoint"])
    broken["ema"] = {**broken["ema"], "shadow_params": broken["ema"]["shadow_params"][1:]}
    with pytest.raises(CheckpointError, match="646 tensors but the model has 647"):
        from_reference(broken)


def test_reference_file_round_trip(tmp_path, reference_fixture):
    path = tmp_path / "checkpoint.pt"
    torch.save(reference_fixture["checkpoint"], path)  # a real reference file holds this dict
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # plain safe loading refuses the omegaconf config
    model = load_model(path)
    with torch.no_grad():
        out = model(**reference_fixture["inputs"])
    assert _rel_err(out, reference_fixture["expected"]["score_ema"]) <= 1e-4


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_marker",))


def test_unsafe_checkpoint_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"score_model.backbone.x": torch.zeros(1)}, "x": _Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load"):
        load_model(path)
    assert not (tmp_path / "pwned_marker").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_corrupt_or_foreign_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.pt: "):
        load_model(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="neither a diffsep nor a reference"):
        load_model(path)


def test_own_checkpoint_round_trip(tmp_path):
    model = tiny(3, spec_factor=0.2).eval()
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, model, ema=ema, step=7)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind
    x = torch.randn(1, 3, 700)
    args = (x, torch.tensor([0.4]), x.sum(1, keepdim=True))
    raw = load_model(path, ema=False)
    assert raw.init_kwargs == model.init_kwargs
    with torch.no_grad():
        torch.testing.assert_close(raw(*args), model(*args))
    assert torch.equal(load_model(path).backbone.output_layer.bias, ema["backbone.output_layer.bias"])
