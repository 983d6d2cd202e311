"""capture_init: every network records its constructor arguments once, by name, defaults applied."""
import inspect

import pytest
import torch
from torch import nn

from diffsep.nets.capture import capture_init
from diffsep.nets.convtasnet import ConvTasNet
from diffsep.nets.demucs import Demucs
from diffsep.nets.ncsnpp import NCSNpp
from diffsep.nets.spectral_unet import SpectralUNet

NETWORKS = [
    (SpectralUNet, dict(n_src=3, nf=8, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[],
                        spec_factor=0.33, time_embedding="t")),
    (NCSNpp, dict(in_ch=4, out_ch=2, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,),
                  image_size=32)),
    (ConvTasNet, dict(n_src=3, N=16, B=8, H=16, X=2, R=1, Sc=8, norm="cln", causal=True)),
    (Demucs, dict(n_src=2, audio_channels=1, channels=4, depth=2, lstm_layers=1)),
]


def _shapes(module: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("cls,kwargs", NETWORKS, ids=[c.__name__ for c, _ in NETWORKS])
def test_every_network_records_every_constructor_argument_and_rebuilds(cls, kwargs):
    torch.manual_seed(0)
    net = cls(**kwargs)
    assert set(net.init_kwargs) == set(inspect.signature(cls).parameters)
    for name, value in kwargs.items():  # given values kept (lists as tuples), the rest defaults
        assert net.init_kwargs[name] == (tuple(value) if isinstance(value, list) else value), name
    for name, p in inspect.signature(cls).parameters.items():
        if name not in kwargs:
            assert net.init_kwargs[name] == p.default, name
    assert _shapes(type(net)(**net.init_kwargs)) == _shapes(net)


def test_positional_arguments_are_recorded_by_name_and_lists_frozen():
    class Net(nn.Module):
        @capture_init
        def __init__(self, n_src: int = 2, widths=(4, 8), **options):
            super().__init__()
            self.layer = nn.Linear(n_src, widths[0])

    net = Net(3, [5, [6, 7]], gain=2.0)
    assert net.init_kwargs == {"n_src": 3, "widths": (5, (6, 7)), "gain": 2.0}
    assert Net.__init__.__name__ == "__init__" and "n_src" in inspect.signature(Net).parameters


def test_a_decorated_subclass_records_its_own_arguments():
    class Base(nn.Module):
        @capture_init
        def __init__(self, a: int = 1):
            super().__init__()

    class Child(Base):
        @capture_init
        def __init__(self, b: int = 2):
            super().__init__(a=b + 1)

    assert Child(5).init_kwargs == {"b": 5}
    assert Base(4).init_kwargs == {"a": 4}


def test_star_args_are_refused_at_decoration():
    with pytest.raises(TypeError, match=r"takes \*args"):
        class Net(nn.Module):  # noqa: F841
            @capture_init
            def __init__(self, *layers):
                super().__init__()
