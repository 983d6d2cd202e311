"""NCSN++ named structure: the reference order, key renaming, checkpoints of older layouts, the
output divisor and the time embedding."""
import pytest
import torch

from diffsep.families import describe
from diffsep.storage.checkpoint import make_checkpoint
from diffsep.inference.loading import load_trained
from diffsep.nets.ncsnpp import NCSNpp, rename_reference_keys
from conftest import diffsep_model


def small_net():
    torch.manual_seed(0)
    return NCSNpp(in_ch=6, out_ch=4, nf=8, ch_mult=(1, 2, 2), num_res_blocks=2,
                  attn_resolutions=(16,), image_size=32, init_scale=1.0)


def test_reference_order_names_every_module_once_and_follows_parameter_order():
    net = small_net()
    names = net.reference_module_names()
    assert len(names) == len(set(names))
    index = {}
    for key in net.state_dict():
        owners = [i for i, n in enumerate(names) if key.startswith(n + ".")]
        assert len(owners) == 1 or key.startswith("output_layer."), key
        index[key] = owners[0] if owners else -1
    assert set(index.values()) == set(range(-1, len(names)))  # every named module holds weights
    order = [index[k] for k, _ in net.named_parameters()]
    assert order == sorted(order)  # registered in the reference's order (optimizer / EMA states)
    assert "down.1.blocks.0.attn" in names and "down.0.blocks.0.attn" not in names
    assert names.index("up.2.blocks.0") < names.index("up.0.blocks.0")  # deepest level first


def flat(state: dict, names: list[str]) -> dict:
    """Our keys back to the reference's flat all_modules.<i> layout."""
    out = {}
    for key, v in state.items():
        owner = next((i for i, n in enumerate(names) if key.startswith(n + ".")), None)
        out[key if owner is None else f"all_modules.{owner}.{key[len(names[owner]) + 1:]}"] = v
    return out


def test_renaming_flat_keys_is_the_inverse_of_flattening():
    net = small_net()
    names = net.reference_module_names()
    state = net.state_dict()
    renamed = rename_reference_keys(flat(state, names), names)
    assert list(renamed) == list(state)
    assert rename_reference_keys({"all_modules.999.w": 1}, names) == {"all_modules.999.w": 1}


@pytest.mark.parametrize("layout", ["flat", "named"])
def test_checkpoints_of_older_layouts_still_load(layout):
    """Older checkpoints hold ``backbone.*`` (before the head was apart from the spectral U-Net;
    the bundled models) or, older still, the reference's flat ``backbone.all_modules.<i>``."""
    torch.manual_seed(0)
    model = diffsep_model(2, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(128,),
                          init_scale=1.0).eval()
    names = model.net.backbone.reference_module_names()
    state = model.net.backbone.state_dict()
    legacy = {("backbone." + k): v for k, v in (flat(state, names) if layout == "flat" else state).items()}
    assert (layout == "flat") == any(".all_modules." in k for k in legacy)
    ckpt = make_checkpoint(model, config=describe(model), ema=legacy)
    ckpt["model"] = legacy
    loaded = load_trained(ckpt).model
    x, mix = torch.randn(1, 2, 2000), torch.randn(1, 1, 2000)
    t = torch.tensor([0.5])
    torch.testing.assert_close(loaded(x, t, mix), model(x, t, mix), rtol=0, atol=0)


def test_divisor_divides_the_output_pyramid_before_the_affine_output_conv():
    """What the paper's head relies on: net(x, t, d) − b = (net(x, t) − b) / d per item, with b
    the 1x1 output conv's bias (so d = t is the reference's scale_by_sigma, exactly)."""
    net = small_net()
    bias = net.output_layer.bias[None, :, None, None]
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, 6, 32, 16, generator=g), torch.tensor([0.03, 0.3, 1.0])
    d = 0.05 + torch.rand(3, generator=g)
    with torch.no_grad():
        plain, divided = net(x, t) - bias, net(x, t, d) - bias
    torch.testing.assert_close(divided, plain / d.reshape(-1, 1, 1, 1), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(divided, plain, rtol=1e-3)


def test_time_embedding_of_t_is_defined_at_t_0_and_log_t_is_not():
    x, t = torch.randn(2, 6, 32, 16), torch.tensor([0.0, 0.5])
    outs = {}
    for emb in ("log_t", "t"):
        torch.manual_seed(0)
        net = NCSNpp(in_ch=6, out_ch=4, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(16,), image_size=32,
                     init_scale=1.0, time_embedding=emb)
        with torch.no_grad():
            outs[emb] = net(x, t)
    assert torch.isfinite(outs["t"]).all()
    assert not torch.isfinite(outs["log_t"][0]).all() and torch.isfinite(outs["log_t"][1]).all()
    with pytest.raises(ValueError, match="valid: log_t, t"):
        NCSNpp(nf=8, ch_mult=(1, 2), image_size=32, time_embedding="sigma")
