"""A family defined here, in a few lines, registered without editing the library: it trains with
train.py, separates with separate.py and is scored by evaluate, like the built-in families."""
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from diffsep.families import FAMILIES, Family, register_family
from diffsep.families.family import LossSettings, ModelSettings
from diffsep.nets.capture import capture_init
from helpers_audio import make_train_cv_tree


@dataclass
class GainSettings:
    init: float = field(default=0.5, metadata={"gt": 0})  # initial gain of every source


class Gains(nn.Module):
    """Each source is a learned gain times the mixture: (B, C, N) -> (B, K, C, N)."""

    @capture_init
    def __init__(self, n_src: int = 2, init: float = 0.5):
        super().__init__()
        self.gain = nn.Parameter(torch.full((n_src, 1, 1), init))

    def forward(self, mix):
        return self.gain * mix[:, None]


class GainFamily(Family):
    kind = "toy_gain"
    model_class = Gains
    sections = {"model": ModelSettings, "loss": LossSettings, "gains": GainSettings}
    config_sections = ("model", "gains")

    def build_model(self):
        return Gains(self.cfg.model.n_src, self.cfg.gains.init)

    def loss(self, net, mix, sources, draws=None):
        return (net(mix) - sources).square().flatten(1).mean(1)

    def estimate(self, model, mix, generator=None, init=None):
        return model(mix)

    @staticmethod
    def config_of(model):
        return {"model": {"kind": "toy_gain", "n_src": model.init_kwargs["n_src"]},
                "gains": {"init": model.init_kwargs["init"]}}


@pytest.fixture
def toy_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, GainFamily.kind, GainFamily)
    return GainFamily


def test_a_family_defined_in_a_test_trains_separates_and_evaluates(toy_family, tmp_path):
    from diffsep.cli import evaluate, separate, train
    from diffsep.inference.loading import load_trained

    root = make_train_cv_tree(tmp_path / "data", 4)
    config = tmp_path / "toy.yaml"
    config.write_text("model:\n  kind: toy_gain\ngains:\n  init: 0.25\n"
                      "data:\n  kind: folder\n  segment_seconds: 0.25\n  num_workers: 0\n"
                      "  train_split: tr\n  valid_split: cv\n")
    run = tmp_path / "run"
    assert train.main([str(config), f"data.root={root}", f"train.run_dir={run}", "train.max_steps=2",
                       "train.batch_size=2", "train.accumulate=1", "train.val_every=0", "train.val_batches=1",
                       "train.val_sep_items=1", "train.log_every=1", "train.device=cpu",
                       "optim.lr=0.1"]) == 0
    trained = load_trained(run / "last.pt")
    assert isinstance(trained.model, Gains) and trained.config.model.kind == "toy_gain"
    assert not torch.allclose(trained.model.gain, torch.full((2, 1, 1), 0.25))  # it learned
    assert not hasattr(trained.config, "sde") and trained.config.gains.init == 0.25

    out = tmp_path / "sep"
    mix = next((root / "cv" / "mix").glob("*.wav"))
    assert separate.main([str(mix), "-o", str(out), "--model", str(run / "last.pt"), "--device", "cpu"]) == 0
    assert (out / "s1" / mix.name).is_file() and (out / "s2" / mix.name).is_file()
    assert evaluate.main(["--model", str(run / "last.pt"), "--dataset", "folder", "--data-root", str(root),
                          "--split", "cv", "--out", str(tmp_path / "eval"), "--no-perceptual", "--jobs", "0",
                          "--device", "cpu", "--quiet"]) == 0
    assert (tmp_path / "eval" / "summary.json").is_file()


def test_registering_checks_the_kind(toy_family):
    class Nameless(Family):
        pass

    with pytest.raises(ValueError, match="needs a kind"):
        register_family(Nameless)

    class Clash(GainFamily):
        pass

    with pytest.raises(ValueError, match="taken by GainFamily"):
        register_family(Clash)
    assert register_family(GainFamily) is GainFamily
