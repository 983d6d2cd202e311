"""Growing a trained Conv-TasNet (train.init_deepen, train.init_widen): the deeper or wider network
computes exactly the trained one's function, its new blocks and channel copies learn from the first
steps, and anything but a deeper / wider Conv-TasNet of otherwise equal sizes is refused in one
sentence."""
from pathlib import Path

import pytest
import torch

from diffsep.nets.convtasnet import ConvTasNet
from diffsep.nets.convtasnet_growth import block_map, deepened, widened
from diffsep.storage.checkpoint import CheckpointError, safe_load
from diffsep.training.trainer import Trainer
from helpers_audio import make_train_cv_tree

from test_run_dir import tiny_cfg

SIZES = dict(N=16, L=8, B=8, H=12, P=3, Sc=8)


def trained_like(X: int, R: int, seed: int = 0) -> ConvTasNet:
    """A Conv-TasNet with every tensor random (norm gains, biases, PReLU slopes included), so
    that no part of the mapping can pass by accident."""
    torch.manual_seed(seed)
    net = ConvTasNet(X=X, R=R, **SIZES)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn_like(p) + (1.0 if p.ndim == 3 and p.shape[0] == 1 else 0.0))
    return net


def two_sgd_steps(net: ConvTasNet) -> None:
    """Two plain SGD steps of a regression to random targets."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    mix, target = torch.randn(2, 1, 800), torch.randn(2, 2, 1, 800)
    for _ in range(2):
        opt.zero_grad()
        ((net(mix) - target) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize("old, new", [((2, 1), (3, 1)), ((2, 1), (2, 2)), ((2, 2), (4, 3)), ((3, 2), (3, 2))])
def test_the_deeper_network_computes_the_trained_function(old, new):
    small = trained_like(*old).double()
    big = ConvTasNet(X=new[0], R=new[1], **SIZES).double()
    big.load_state_dict(deepened(small.state_dict(), *old, big.state_dict(), *new))
    mix = torch.randn(3, 1, 1234, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(big(mix), small(mix), rtol=1e-12, atol=1e-12)
    # each trained block keeps its dilation
    dil = {i: b.depthwise.dilation[0] for i, b in enumerate(big.blocks)}
    for i, j in block_map(*old, *new).items():
        assert dil[j] == small.blocks[i].depthwise.dilation[0]
    if new != old:  # the new blocks are not trivially dead: their inner layers are initialised
        new_blocks = set(range(len(big.blocks))) - set(block_map(*old, *new).values())
        assert all(big.blocks[j].inp.weight.abs().sum() > 0 for j in new_blocks)


def test_the_new_blocks_learn_from_the_first_steps():
    small = trained_like(2, 1)
    big = ConvTasNet(X=3, R=2, **SIZES)
    big.load_state_dict(deepened(small.state_dict(), 2, 1, big.state_dict(), 3, 2))
    new_blocks = sorted(set(range(6)) - set(block_map(2, 1, 3, 2).values()))
    before = {k: v.clone() for k, v in big.state_dict().items()}
    two_sgd_steps(big)
    after = big.state_dict()
    for j in new_blocks:
        for name in ("res.weight", "skip.weight", "inp.weight", "depthwise.weight"):
            if name == "res.weight" and j == 5:  # the last block's residual output feeds nothing
                continue
            key = f"blocks.{j}.{name}"
            assert not torch.equal(before[key], after[key]), key


def test_anything_but_a_deeper_network_of_the_same_sizes_is_refused():
    small = trained_like(2, 2)
    with pytest.raises(ValueError, match="X >= 2 and R >= 2"):
        deepened(small.state_dict(), 2, 2, ConvTasNet(X=3, R=1, **SIZES).state_dict(), 3, 1)
    wider = ConvTasNet(X=3, R=2, **{**SIZES, "H": 16})
    with pytest.raises(ValueError, match="only X and R may differ"):
        deepened(small.state_dict(), 2, 2, wider.state_dict(), 3, 2)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_train_cv_tree(tmp_path_factory.mktemp("data"), 4, n=1000)


def assert_starts_with_the_trained_function(init, cfg):
    """A run configured by ``cfg`` (growing the checkpoint ``init``) starts, model and EMA, with the
    checkpoint's function, then trains its 2 steps."""
    run = Trainer(cfg)
    run._resume()
    small = ConvTasNet(**safe_load(init)["config"]["convtasnet"] | {"n_src": 2})
    small.load_state_dict(safe_load(init)["ema"])
    mix = torch.randn(1, 1, 900)
    with torch.no_grad():
        for net in (run.model, run.ema.module):
            torch.testing.assert_close(net(mix), small(mix), rtol=1e-5, atol=1e-6)
    assert run.run() == 2


def test_a_run_starts_deeper_from_a_trained_run_with_the_same_function(data_root, tmp_path):
    Trainer(tiny_cfg(data_root, tmp_path / "a", "train.max_steps=2", "convtasnet.X=2")).run()
    init = tmp_path / "a" / "last.pt"
    assert_starts_with_the_trained_function(init, tiny_cfg(
        data_root, tmp_path / "b", "train.max_steps=2", "convtasnet.X=3", "convtasnet.R=2",
        f"train.init_from={init}", "train.init_deepen=true"))
    with pytest.raises(CheckpointError, match=r"only X and R may differ \(convtasnet.H=8"):
        Trainer(tiny_cfg(data_root, tmp_path / "c", "convtasnet.X=3", "convtasnet.H=12",
                         f"train.init_from={init}", "train.init_deepen=true"))._resume()
    with pytest.raises(CheckpointError, match="X >= 2 and R >= 1"):
        Trainer(tiny_cfg(data_root, tmp_path / "d", "convtasnet.X=1",
                         f"train.init_from={init}", "train.init_deepen=true"))._resume()


WIDE = [dict(N=32), dict(B=16), dict(H=36), dict(Sc=16), dict(N=32, B=16, H=24, Sc=24)]


def narrow_sizes(**kw):
    return {k: SIZES[k] for k in ("N", "B", "H", "Sc")} | kw


@pytest.mark.parametrize("grow", WIDE)
def test_the_wider_network_computes_the_trained_function(grow):
    small = trained_like(2, 2).double()
    new = narrow_sizes(**grow)
    big = ConvTasNet(X=2, R=2, **(SIZES | new)).double()
    big.load_state_dict(widened(small.state_dict(), narrow_sizes(), new, torch.Generator().manual_seed(1)))
    mix = torch.randn(3, 1, 1234, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(big(mix), small(mix), rtol=1e-12, atol=1e-12)
    # the weights that read copied channels are split unequally (else the copies never part)
    if "H" in grow:
        B, H = SIZES["B"], SIZES["H"]
        w = big.blocks[0].res.weight[:B, :, 0].reshape(B, -1, H)  # (B, copies, H)
        torch.testing.assert_close(w.sum(1), small.blocks[0].res.weight[:, :, 0])
        assert not torch.allclose(w[:, 0], w[:, 1])


def test_the_channel_copies_grow_apart_when_trained():
    small = trained_like(2, 1)
    big = ConvTasNet(X=2, R=1, **(SIZES | dict(H=24)))
    big.load_state_dict(widened(small.state_dict(), narrow_sizes(), narrow_sizes(H=24), torch.Generator().manual_seed(0)))
    H = SIZES["H"]
    two_sgd_steps(big)
    for name in ("inp", "depthwise"):
        w = getattr(big.blocks[0], name).weight
        assert (w[:H] - w[H:]).abs().max() > 1e-4, name


def test_anything_but_a_whole_multiple_is_refused():
    small = trained_like(2, 2)
    with pytest.raises(ValueError, match="convtasnet.H=18 is not a whole multiple of the trained H=12"):
        widened(small.state_dict(), narrow_sizes(), narrow_sizes(H=18))
    with pytest.raises(ValueError, match="convtasnet.B=4 is not a whole multiple"):
        widened(small.state_dict(), narrow_sizes(), narrow_sizes(B=4))


def test_a_run_starts_wider_and_deeper_from_a_trained_run_with_the_same_function(data_root, tmp_path):
    Trainer(tiny_cfg(data_root, tmp_path / "a", "train.max_steps=2", "convtasnet.X=2")).run()
    init = tmp_path / "a" / "last.pt"
    have = safe_load(init)["config"]["convtasnet"]
    wide = [f"convtasnet.H={2 * have['H']}", f"convtasnet.B={2 * have['B']}"]
    assert_starts_with_the_trained_function(init, tiny_cfg(
        data_root, tmp_path / "b", "train.max_steps=2", "convtasnet.X=3", *wide,
        f"train.init_from={init}", "train.init_deepen=true", "train.init_widen=true"))
    with pytest.raises(CheckpointError, match=r"train.init_widen: only N, B, H and Sc may differ \(convtasnet.X=2"):
        Trainer(tiny_cfg(data_root, tmp_path / "c", "convtasnet.X=3", *wide,
                         f"train.init_from={init}", "train.init_widen=true"))._resume()
    with pytest.raises(CheckpointError, match="not a whole multiple"):
        Trainer(tiny_cfg(data_root, tmp_path / "d", "convtasnet.X=2", f"convtasnet.H={have['H'] + 1}",
                         f"train.init_from={init}", "train.init_widen=true"))._resume()


def test_widening_keeps_the_function_with_batch_norm():
    torch.manual_seed(3)
    small = ConvTasNet(X=2, R=1, norm="bn", **SIZES).double()
    with torch.no_grad():  # trained-like running statistics
        for m in small.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    new = narrow_sizes(N=32, B=16, H=24, Sc=16)
    big = ConvTasNet(X=2, R=1, norm="bn", **(SIZES | new)).double()
    big.load_state_dict(widened(small.state_dict(), narrow_sizes(), new, torch.Generator().manual_seed(2)))
    mix = torch.randn(2, 1, 700, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(big.eval()(mix), small.eval()(mix), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(big.train()(mix), small.train()(mix), rtol=1e-10, atol=1e-10)
