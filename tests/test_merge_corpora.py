"""tools/merge_corpora.py: the union of wsj0-mix trees by links, first input winning on names."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("merge_corpora", Path(__file__).parents[1] / "tools" / "merge_corpora.py")
merge_corpora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_corpora)


def tree(root, split, names, tag):
    for name in names:
        for folder in ("mix", "s1", "s2"):
            p = root / "wav8k" / "min" / split / folder / f"{name}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{tag}:{folder}")


def test_union_by_links_first_root_wins(tmp_path):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    tree(a, "tr", ["x", "y"], "a"), tree(a, "cv", ["c"], "a")
    tree(b, "tr", ["y", "z"], "b"), tree(b, "cv", ["d"], "b")
    assert merge_corpora.merge([a, b], out) == 5
    tr = out / "wav8k" / "min" / "tr"
    assert sorted(p.name for p in (tr / "s2").iterdir()) == ["x.wav", "y.wav", "z.wav"]
    assert (tr / "s1" / "y.wav").is_symlink() and (tr / "s1" / "y.wav").read_text() == "a:s1"
    assert (tr / "mix" / "z.wav").read_text() == "b:mix"
    assert sorted(p.name for p in (out / "wav8k" / "min" / "cv" / "mix").iterdir()) == ["c.wav", "d.wav"]
    with pytest.raises(SystemExit, match="not the wsj0-mix layout"):
        merge_corpora.merge([tmp_path / "nothing"], out)
