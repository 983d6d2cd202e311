"""One straight loading path: the location is resolved once, the file read once, its format
detected once, and reference checkpoints go through the same build as ours."""
import torch

from diffsep.inference import hub, loading
from diffsep.inference.loading import load_separator, load_trained


def test_a_reference_checkpoint_is_read_once_and_built_like_ours(reference_fixture, tmp_path, monkeypatch):
    path = tmp_path / "ref.pt"
    torch.save(reference_fixture["checkpoint"], path)
    reads, locations = [], []
    real_load, real_locate = torch.load, hub.locate
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    monkeypatch.setattr(hub, "locate", lambda spec: locations.append(spec) or real_locate(spec))
    sep = load_separator(str(path), device="cpu", sampler={"steps": 2})
    assert len(reads) == 1 and locations == [str(path)]
    assert sep.nfe == 4 and sep.sample_rate == loading.load_trained(reference_fixture["checkpoint"]).config.data.sample_rate
    trained = load_trained(reference_fixture["checkpoint"])
    assert trained.config.model.kind == "diffsep" and trained.config.model.head == "score_t"
    assert all(not p.is_meta for p in trained.model.parameters())
