"""Dataset layouts are registered classes that own their options, split names and speaker ids."""
from pathlib import Path

import pytest

from diffsep.config.settings import ConfigError, load_config
from diffsep.data.dataset import Item
from diffsep.data.layouts import LAYOUTS, Layout, LayoutError, build_items, make_layout
from helpers_audio import make_mix_tree


class Flat(Layout):
    """Every split is ROOT/{mix,s1..sK} (a toy layout defined in a test)."""
    kind = "flat_test"

    def items(self, root, split):
        from diffsep.data.layouts import folder
        return folder(root, "", self.n_src)


@pytest.fixture
def flat(monkeypatch):
    monkeypatch.setitem(LAYOUTS, Flat.kind, Flat)
    return Flat


def test_a_registered_layout_is_a_data_kind(flat, tmp_path):
    make_mix_tree(tmp_path, 3)
    assert [i.name for i in build_items("flat_test", tmp_path, "anything")] == ["item00", "item01", "item02"]
    assert load_config(None, ["data.kind=flat_test"]).data.kind == "flat_test"


def test_unknown_kinds_name_the_valid_ones(tmp_path):
    with pytest.raises(LayoutError, match="valid: wsj0_mix, librimix, vbdemand, folder, musdb"):
        make_layout("wsj")
    with pytest.raises(ConfigError, match="data.kind must be one of wsj0_mix"):
        load_config(None, ["data.kind=wsj"])


def test_layouts_read_only_their_own_options():
    assert make_layout("wsj0_mix", mode="max", stems=["a"]).opts == {"mode": "max"}
    assert make_layout("musdb", 2, stems=["voice", "rest"], mode="max").source_names() == ("voice", "rest")
    assert make_layout("folder", 3).source_names() == ("s1", "s2", "s3")
    assert LAYOUTS["musdb"].named_sources and not LAYOUTS["wsj0_mix"].named_sources
    assert {k: c.splits["test"] for k, c in LAYOUTS.items()} == {
        "wsj0_mix": "tt", "librimix": "test", "vbdemand": "test", "folder": "tt", "musdb": "test"}


@pytest.mark.parametrize("kind,name,sources,speakers", [
    ("wsj0_mix", "011a0101_1.2_40ac0201_-1.2", ("a.wav", "b.wav"), ["011", "40a"]),
    ("wsj0_mix", "esp-f1-tr0001_0.5_mb-us1-tr0007_-0.5", ("a.wav", "b.wav"), ["esp-f1", "mb-us1"]),
    ("librimix", "x", ("103-1240-0003.wav", "19-198-0001.wav"), ["103", "19"]),
    ("folder", "x", ("/d/s1/x.wav", "/d/s2/x.wav"), ["/d/s1/x.wav", "/d/s2/x.wav"]),
])
def test_each_layout_reads_its_speaker_ids(kind, name, sources, speakers):
    assert LAYOUTS[kind].speakers(Item(name, Path("m.wav"), tuple(map(Path, sources)))) == speakers
