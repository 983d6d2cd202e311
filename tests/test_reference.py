"""The reference DiffSep checkpoint: converted weights reproduce the reference implementation."""
import pickle

import pytest
import torch

from diffsep.storage.checkpoint import CheckpointError
from diffsep.inference.loading import load_model
from diffsep.inference.loading import from_reference
from diffsep.inference.reference import read_reference_config
from diffsep.nets.inference_path import set_inference_path


def _rel_err(out, expected):
    return ((out - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("ema,key", [(True, "score_ema"), (False, "score_raw")])
def test_reference_equivalence(reference_fixture, ema, key):
    """The converted reference checkpoint reproduces the reference implementation's outputs."""
    model = from_reference(reference_fixture["checkpoint"], ema=ema)
    assert model.n_src == 2 and model.net.spec_factor == 0.33 and model.head == "score_t"
    with torch.no_grad():
        out = model(**reference_fixture["inputs"])
    assert _rel_err(out, reference_fixture["expected"][key]) <= 1e-4
    # the fast path separators take (channels-last, inference mode) stays within the same tolerance
    with torch.inference_mode():
        fast = set_inference_path(model, "fast")(**reference_fixture["inputs"])
    assert _rel_err(fast, reference_fixture["expected"][key]) <= 1e-4 and not torch.equal(fast, out)


def test_reference_converter_reads_its_config_and_picks_ema(reference_fixture):
    ckpt = reference_fixture["checkpoint"]
    cfg = read_reference_config(ckpt)
    assert cfg["model"]["n_src"] == 2 and cfg["model"]["nf"] == 16
    assert cfg["sde"] == {"gamma": 2.0, "sigma_min": 0.05, "sigma_max": 0.5}
    raw, ema = from_reference(ckpt, ema=False), from_reference(ckpt)
    w_raw = raw.net.backbone.temb.dense_0.weight
    assert torch.equal(w_raw, ckpt["state_dict"]["score_model.backbone.all_modules.1.weight"])
    assert torch.equal(ema.net.backbone.temb.dense_0.weight, ckpt["ema"]["shadow_params"][3])
    # Fourier frequencies come from the file, not from a new random draw
    assert torch.equal(ema.net.backbone.temb.fourier.W, ckpt["ema"]["shadow_params"][2])


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
