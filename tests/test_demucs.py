import pytest
import torch
from torch import nn

from diffsep.nets.demucs import Demucs


def paper_parameter_count(K: int, C: int, channels: int, depth: int, kernel: int = 8, context: int = 3) -> int:
    """Counted from the paper's description, block by block (weights + biases)."""
    n, c_in, c = 0, C, channels
    for level in range(depth):
        n += kernel * c_in * c + c + c * 2 * c + 2 * c  # conv K=8, 1x1 to 2c (GLU)
        c_out = K * C if level == 0 else c_in
        n += context * c * 2 * c + 2 * c + kernel * c * c_out + c_out  # context conv, transposed conv
        c_in, c = c, 2 * c
    d = c_in  # BLSTM(d, 2 layers) + Linear(2d, d)
    n += 2 * (4 * d * (d + d) + 8 * d) + 2 * (4 * d * (2 * d + d) + 8 * d) + 2 * d * d + d
    return n


def test_paper_setting_has_265_7_million_parameters():
    """4 stereo stems, 64 initial channels, depth 6: 265,679,496 parameters (648.5 M with 100
    channels, the size usually quoted for the larger model)."""
    m = Demucs(n_src=4, audio_channels=2, channels=64, depth=6)
    count = sum(p.numel() for p in m.parameters())
    assert count == paper_parameter_count(4, 2, 64, 6) == 265_679_496


@pytest.mark.parametrize("K,C", [(2, 1), (4, 2), (2, 2), (4, 1)])
@pytest.mark.parametrize("N", [1, 333, 1001, 4097])
def test_output_has_the_input_length_for_any_length(K, C, N):
    m = Demucs(n_src=K, audio_channels=C, channels=4, depth=3, lstm_layers=1)
    assert m(torch.randn(2, C, N)).shape == (2, K, C, N)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="2 audio channel"):
        Demucs(audio_channels=2, channels=4, depth=2)(torch.randn(1, 1, 100))


def _receptive_centre(m: nn.Module, x: torch.Tensor, n: int) -> float:
    x = x.clone().requires_grad_(True)
    m(x)[0, 0, 0, n].backward()
    support = (x.grad[0, 0] != 0).nonzero().flatten().float()
    return (support.min().item() + support.max().item()) / 2


@pytest.mark.parametrize("N", [700, 701, 1000])
def test_output_samples_line_up_with_input_samples(N):
    """With positive weights and input nothing is clipped by a ReLU, so an output sample's
    gradient support is its whole receptive field, which must be centred on the same input
    sample (to within the stride grid: ±stride^depth / 2)."""
    torch.manual_seed(0)
    m = Demucs(n_src=2, audio_channels=1, channels=4, depth=2, lstm_layers=0)
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    x = torch.rand(1, 1, N) + 0.1
    offsets = [_receptive_centre(m, x, n) - n for n in range(200, 264)]
    assert all(abs(o) <= 8.5 for o in offsets), offsets
    assert abs(sum(offsets) / len(offsets)) <= 0.5  # centred on average over a stride period


def test_init_rescaling_brings_weight_std_to_the_geometric_mean_with_the_reference():
    torch.manual_seed(0)
    plain = Demucs(n_src=2, audio_channels=2, channels=8, depth=2, rescale=0)
    torch.manual_seed(0)
    scaled = Demucs(n_src=2, audio_channels=2, channels=8, depth=2, rescale=0.1)
    for (name, a), b in zip(plain.named_modules(), scaled.modules()):
        if isinstance(a, (nn.Conv1d, nn.ConvTranspose1d)):
            s0 = a.weight.std().item()
            assert b.weight.std().item() == pytest.approx((s0 * 0.1) ** 0.5, rel=1e-4), name
            torch.testing.assert_close(b.bias / a.bias, b.weight.mean() / a.weight.mean() * torch.ones_like(a.bias))
