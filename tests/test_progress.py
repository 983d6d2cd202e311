"""Long commands show a tqdm progress bar with an ETA on stderr, and --quiet silences it: evaluation
(per utterance), folder separation (per file), corpus building (diffsep synth, and the development
tools merge_corpora.py and make_free_corpus.py)."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from helpers_audio import make_mix_tree, write_refs_and_estimates

TOOLS = Path(__file__).parents[1] / "tools"
BAR = re.compile(r"(\w+): +100%\|.*\| (\d+)/(\d+) \[[\d:]+<[\d:]+")  # "desc: 100%|███| n/n [elapsed<eta"


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_bars(err: str) -> dict[str, int]:
    """{description: count} of the progress bars that reached 100 % in ``err``."""
    return {m.group(1): int(m.group(3)) for m in BAR.finditer(err) if m.group(2) == m.group(3)}


def assert_quiet_has_no_bar(err: str):
    assert "%|" not in err and "it/s" not in err and "\r" not in err, err


def assert_progress(err: str, quiet: bool, bars: dict[str, int]):
    """No bar at all with --quiet; else exactly ``bars`` ({description: total}) finished."""
    if quiet:
        assert_quiet_has_no_bar(err)
    else:
        assert finished_bars(err) == bars


@pytest.mark.parametrize("quiet", [False, True])
def test_evaluate_progress(tmp_path, capsys, quiet):
    from diffsep.cli.evaluate import main

    write_refs_and_estimates(tmp_path, n_items=3)
    assert main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out",
                 str(tmp_path / "res"), "--no-perceptual", "--report"] + ["--quiet"] * quiet) == 0
    err = capsys.readouterr().err
    # scoring, then loading the items the listening report plays
    assert_progress(err, quiet, {"evaluate": 3, "report": 3})


class StubSeparator:
    source_names = ["s1", "s2"]
    channels = 1


@pytest.mark.parametrize("quiet", [False, True])
def test_folder_separation_progress(tmp_path, capsys, monkeypatch, quiet):
    from diffsep.cli import separate

    make_mix_tree(tmp_path / "in", n_items=3, n=800)
    monkeypatch.setattr(separate, "load_separator", lambda args: StubSeparator())
    monkeypatch.setattr(separate, "separate_file", lambda *a: None)  # the loop, not the model
    assert separate.main([str(tmp_path / "in" / "mix"), "-o", str(tmp_path / "out"), "--model", "stub"]
                         + ["--quiet"] * quiet) == 0
    err = capsys.readouterr().err
    assert_progress(err, quiet, {"separate": 3})


@pytest.mark.parametrize("quiet", [False, True])
def test_synth_corpus_progress(tmp_path, capsys, quiet):
    from diffsep.cli.synth import main

    assert main(["--root", str(tmp_path / "c"), "--train", "2", "--test", "1", "--seconds", "0.3",
                 "--rate", "8000"] + ["--quiet"] * quiet) == 0
    err = capsys.readouterr().err
    assert_progress(err, quiet, {"synth": 3})


@pytest.mark.parametrize("quiet", [False, True])
def test_merge_corpora_progress(tmp_path, capsys, quiet):
    root = tmp_path / "a"
    for name in ("x", "y"):
        for folder in ("mix", "s1", "s2"):
            p = root / "wav8k" / "min" / "tr" / folder / f"{name}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(folder)
    tool("merge_corpora").main([str(root), "--out", str(tmp_path / "out"), "--splits", "tr"]
                               + ["--quiet"] * quiet)
    err = capsys.readouterr().err
    assert_progress(err, quiet, {"merge": 2})


FAKE_GENERATOR = '''
from multiprocessing import Pool

VOICES = {}


def _reg(vid, *args, **kwargs):
    VOICES[vid] = {"id": vid, "family": args[2], **kwargs}


def voice_available(v):
    return False


def synth_native(spec, tmp):
    return None


def double(x):
    return 2 * x


def main(argv):
    with Pool(1) as pool:
        print("results", pool.map(double, range(4)))
'''


@pytest.mark.parametrize("quiet", [False, True])
def test_free_corpus_shows_the_generators_progress(tmp_path, capsys, monkeypatch, quiet):
    gen = tmp_path / f"fake_corpus_gen_{int(quiet)}.py"  # a stand-in for the shared generator
    gen.write_text(FAKE_GENERATOR)
    monkeypatch.setattr(sys, "path", list(sys.path))
    tool("make_free_corpus").main(["--generator", str(gen)] + ["--quiet"] * quiet)
    captured = capsys.readouterr()
    assert "results [0, 2, 4, 6]" in captured.out  # the generator's results, in order
    assert_progress(captured.err, quiet, {"double": 4})
