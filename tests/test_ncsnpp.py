"""NCSN++ named structure: the reference order, key renaming, and checkpoints of the older flat
layout."""
import pytest
import torch

from diffsep.families import describe
from diffsep.storage.checkpoint import make_checkpoint
from diffsep.inference.loading import load_trained
from diffsep.nets.ncsnpp import NCSNpp, rename_reference_keys
from diffsep.nets.score_model import ScoreModel


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


def test_checkpoints_of_the_flat_layout_still_load():
    torch.manual_seed(0)
    model = ScoreModel(n_src=2, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(128,),
                       init_scale=1.0).eval()
    names = model.backbone.reference_module_names()
    legacy = {("backbone." + k): v for k, v in flat(model.backbone.state_dict(), names).items()}
    assert any(".all_modules." in k for k in legacy)
    ckpt = make_checkpoint(model, config=describe(model), ema=legacy)
    ckpt["model"] = legacy
    loaded = load_trained(ckpt).model
    x, mix = torch.randn(1, 2, 2000), torch.randn(1, 1, 2000)
    t = torch.tensor([0.5])
    torch.testing.assert_close(loaded(x, t, mix), model(x, t, mix), rtol=0, atol=0)


def test_sqrt_t_output_scale_is_the_reference_output_times_sqrt_t():
    """Same weights: before the final affine 1x1 conv the two scalings differ by exactly √t."""
    ref, alt = small_net(), small_net()
    alt.output_scale = "sqrt_t"
    bias = ref.output_layer.bias[None, :, None, None]
    x, t = torch.randn(3, 6, 32, 16), torch.tensor([0.03, 0.3, 1.0])
    with torch.no_grad():
        a, b = ref(x, t) - bias, alt(x, t) - bias
    torch.testing.assert_close(b, a * t.sqrt().reshape(-1, 1, 1, 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="valid: t, sqrt_t"):
        NCSNpp(nf=8, ch_mult=(1, 2), image_size=32, output_scale="t2")
