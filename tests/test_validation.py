"""Validation scores the model as it ships (sampler settings, warm-start partner) by the path
`diffsep evaluate` takes, so best.pt is the best of what users get."""
import json

import pytest
import torch

from conftest import make_tiny_checkpoint
from helpers_audio import make_mix_tree
from diffsep.cli.evaluate import main as evaluate
from diffsep.config.settings import ConfigError, config_from_dict, to_dict
from diffsep.data import SeparationDataset, build_items
from diffsep.inference.loading import load_trained
from diffsep.training.trainer import Trainer
from diffsep.training.validation import separation_scores, validation_separator


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from diffsep.inference.packaging import save_model
    from diffsep.nets.convtasnet import ConvTasNet

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(root / "partner.pt", ConvTasNet(n_src=2, N=16, B=8, H=16, X=2, R=1, Sc=8))
    return make_tiny_checkpoint(root / "refiner.pt", steps=4), root / "partner.pt"


def shipping_config(refiner, partner, tmp_path, **sampler):
    d = to_dict(load_trained(refiner).config)
    d["sampler"].update(sampler)
    d["train"].update(val_warm_start=str(partner) if partner else "", run_dir=str(tmp_path / "run"),
                      batch_size=1, accumulate=1, device="cpu")
    return config_from_dict(d)


def test_validation_scores_equal_what_evaluate_reports_for_the_shipped_model(models, tmp_path):
    refiner, partner = models
    make_mix_tree(tmp_path / "data" / "cv", n_items=2, n=3000)
    cfg = shipping_config(refiner, partner, tmp_path, t_start=0.3)
    items = build_items("folder", tmp_path / "data", "cv", n_src=2, sample_rate=8000)
    whole = SeparationDataset(items, 8000, random_crop=False)
    tr = Trainer(cfg, datasets=(whole, whole))
    assert tr.val_separator.info["warm_start"]["kind"] == "convtasnet"  # the refiner as it ships
    assert tr.val_separator.info["sampler"]["t_start"] == 0.3
    tr.ema.module.load_state_dict(load_trained(refiner).model.state_dict())
    val = separation_scores(tr.val_separator, whole, len(whole), cfg.train.seed)
    out = tmp_path / "eval"
    assert evaluate(["--model", str(refiner), "--warm-start", str(partner), "--t-start", "0.3",
                     "--data-root", str(tmp_path / "data"), "--dataset", "folder", "--split", "cv",
                     "--out", str(out), "--metrics", "si_sdr,si_sdri", "--device", "cpu",
                     "--seed", str(cfg.train.seed), "--jobs", "0", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert val["si_sdri"] == pytest.approx(summary["si_sdri"]["mean"], abs=1e-4)
    assert val["si_sdr"] == pytest.approx(summary["si_sdr"]["mean"], abs=1e-4)


def test_a_sampler_that_needs_a_partner_without_one_is_a_config_error(models, tmp_path):
    refiner, _ = models
    cfg = shipping_config(refiner, None, tmp_path, init="model")
    with pytest.raises(ConfigError, match="train.val_warm_start"):
        validation_separator(cfg, load_trained(refiner).model, "cpu")
