"""Checkpoint safety and our format."""
import os

import pytest
import torch

from diffsep.storage.checkpoint import CheckpointError
from diffsep.inference.packaging import save_model as save_checkpoint
from diffsep.inference.loading import load_model
from conftest import diffsep_model


def tiny(K=2, **kw):
    return diffsep_model(K, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(128,), **kw)


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
    assert raw.net.init_kwargs == model.net.init_kwargs and raw.head == model.head
    with torch.no_grad():
        torch.testing.assert_close(raw(*args), model(*args))
    assert torch.equal(load_model(path).net.backbone.output_layer.bias, ema["net.backbone.output_layer.bias"])
