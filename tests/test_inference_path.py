"""The networks' fast inference path (diffsep/nets/inference_path.py): equal to the reference path
within float32 rounding (max |fast − reference| <= 1e-4 max |reference|), taken by separators by
default, never by training; in-place updates without autograd change no value. (On the reference
fixture: tests/test_reference.py.)"""
import pytest
import torch

from diffsep.config.build import build_model
from diffsep.config.settings import config_from_dict
from diffsep.inference.loading import Trained, make_separator
from diffsep.nets.inference_path import inference_path_of, set_inference_path
from conftest import diffsep_model

TOL = 1e-4  # max |fast − reference| / max |reference|


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def small_ncsnpp(seed=0, **kw):
    torch.manual_seed(seed)
    return diffsep_model(2, nf=8, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(64,), init_scale=1.0,
                         **kw).eval()


def small_tasnet(seed=0):
    torch.manual_seed(seed)
    cfg = config_from_dict({"model": {"kind": "diffsep", "backbone": "tasnet", "head": "data", "tasnet_N": 16,
                                      "tasnet_B": 8, "tasnet_H": 16, "tasnet_X": 3, "tasnet_R": 2, "tasnet_Sc": 8},
                           "sampler": {"kind": "ddim", "steps": 2}})
    model = build_model(cfg).eval()
    for lin in model.net.film:  # FiLM away from the identity, so that t matters
        torch.nn.init.normal_(lin.weight, std=0.3)
        torch.nn.init.normal_(lin.bias, std=0.3)
    return cfg, model


def layouts_seen(model) -> list[bool]:
    """A hook list: for each call of NCSN++'s first convolution, whether its input was channels-last."""
    seen = []
    model.net.backbone.conv_in.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)
                                    and not args[0].is_contiguous()))
    return seen


def draws(seed, B, K, N):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, K, N, generator=g)
    t = 0.03 + 0.97 * torch.rand(B, generator=g)
    return x, t, x.sum(1, keepdim=True) + 0.1 * torch.randn(B, 1, N, generator=g)


@pytest.mark.parametrize("seed", range(3))
def test_ncsnpp_fast_path_matches_the_reference_path_and_runs_channels_last(seed):
    model = small_ncsnpp(seed)
    seen = layouts_seen(model)
    x, t, mix = draws(seed, 2, 2, 1500 + 700 * seed)
    with torch.no_grad():
        ref = set_inference_path(model, "reference")(x, t, mix)
        with torch.inference_mode():
            fast = set_inference_path(model, "fast")(x, t, mix)
    assert seen == [False, True]  # the reference path in NCHW, the fast one channels-last
    assert rel_err(fast, ref) <= TOL
    assert fast.is_contiguous() and fast.shape == ref.shape


@pytest.mark.parametrize("seed", range(2))
def test_tasnet_default_path_matches_the_reference_path(seed):
    _, model = small_tasnet(seed)
    x, t, mix = draws(seed, 2, 2, 2001 + 313 * seed)
    with torch.no_grad():
        ref = set_inference_path(model, "reference")(x, t, mix)
    with torch.inference_mode():
        fast = set_inference_path(model, "fast")(x, t, mix)
    assert rel_err(fast, ref) <= TOL


@pytest.mark.parametrize("make", [small_ncsnpp, lambda seed: small_tasnet(seed)[1]], ids=["ncsnpp", "tasnet"])
def test_without_autograd_the_reference_path_computes_what_training_does(make):
    """In-place updates without autograd (both backbones, both paths) change no value: the
    no-grad reference path equals the forward with gradients bit for bit; training ignores the
    fast setting (gradients recorded: the reference computation) and still backpropagates."""
    model = make(1)
    x, t, mix = draws(5, 2, 2, 1800)
    with torch.enable_grad():
        trained = set_inference_path(model, "fast")(x, t, mix)
        trained.square().mean().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.grad is not None for p in params) >= 0.9 * len(params)  # (Conv-TasNet's last residual conv is unused)
    with torch.no_grad():
        plain = set_inference_path(model, "reference")(x, t, mix)
    assert torch.equal(plain, trained.detach())


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_the_separator_runs_the_fast_path_by_default(path):
    cfg = config_from_dict({"model": {"kind": "diffsep", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
                                      "attn_resolutions": []}, "sampler": {"kind": "ode", "steps": 2}})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    seen, modes = layouts_seen(model), []
    model.net.backbone.register_forward_pre_hook(lambda m, args: modes.append(torch.is_inference_mode_enabled()))
    sep = make_separator(Trained(cfg, model)) if path == "fast" else make_separator(Trained(cfg, model),
                                                                                    inference_path=path)
    assert inference_path_of(model) == path
    est = sep(torch.randn(1, 1, 1200))
    assert seen and all(s == (path == "fast") for s in seen) and all(modes)
    assert not est.is_inference()
    est += 1  # an ordinary tensor: callers may update it in place


def test_the_separator_sets_the_path_of_a_tasnet_model_and_its_results_follow_the_reference():
    cfg, model = small_tasnet(3)
    mix = torch.randn(1, 1, 1600)
    out = {path: make_separator(Trained(cfg, model), inference_path=path)(mix) for path in ("reference", "fast")}
    assert rel_err(out["fast"], out["reference"]) <= TOL


def test_an_unknown_path_is_refused():
    with pytest.raises(ValueError, match="unknown inference path 'quick'; valid: fast, reference"):
        set_inference_path(small_ncsnpp(), "quick")
