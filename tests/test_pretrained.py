"""The bundled models and demo: present, small, described, installed, and separating."""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from diffsep import separate_file
from diffsep.inference import pretrained
from diffsep.storage.audio import read_audio
from diffsep.storage.checkpoint import is_ours, safe_load
from diffsep.cli.separate import main as separate_main
from diffsep.evaluation.scoring import Scoring, score_item
from diffsep.inference.loading import load_separator, separate_signal

ROOT = Path(__file__).resolve().parents[1]
MAX_TOTAL_MB = 25
DEMO_TOLERANCE_DB = 0.3  # thread counts and BLAS builds move the sampler's arithmetic a little
SI_SDRI = Scoring(metrics=("si_sdri",))


def test_index_lists_loadable_fp16_models_with_cards_and_a_bundled_partner():
    models = pretrained.bundled_models()
    assert pretrained.default_model_name() == next(iter(models))
    assert {m.family for m in models.values()} >= {"diffsep", "convtasnet"}
    total = 0
    for m in models.values():
        ckpt = safe_load(m.path)
        assert is_ours(ckpt) and ckpt["config"]["model"]["kind"] == m.family
        floats = [v for v in ckpt["model"].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float16 for v in floats)
        assert m.card_path.is_file()
        assert m.warm_start is None or m.warm_start in models
        total += m.path.stat().st_size
    assert total <= MAX_TOTAL_MB * 2 ** 20


def test_cards_state_the_listed_scores():
    """Each card shows the numbers --list-models prints (to the shown precision)."""
    for m in pretrained.bundled_models().values():
        card = m.card_path.read_text()
        assert m.scores, f"{m.name}: no scores listed"
        for value in m.scores.values():
            assert f"{value:g}" in card, f"{m.name}: card does not state {value:g}"


def test_demo_mixture_is_the_sum_of_its_references():
    d = pretrained.demo()
    mix, sr = read_audio(d.mix)
    refs = np.stack([read_audio(p)[0][0] for p in d.sources])
    assert sr == d.sample_rate and refs.shape[1] == mix.shape[1]
    assert np.abs(mix[0] - refs.sum(0)).max() <= 2 / 2 ** 15  # 16-bit rounding of three files


def test_package_data_covers_every_bundled_file():
    """The globs in pyproject.toml match every file of diffsep/pretrained but the code."""
    text = (ROOT / "pyproject.toml").read_text()
    globs = re.search(r'"diffsep.inference.pretrained" = \[([^\]]*)\]', text).group(1)
    patterns = [g.strip().strip('"') for g in globs.split(",") if g.strip()]
    here = pretrained.HERE
    files = [p.relative_to(here) for p in here.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert files
    unmatched = [str(f) for f in files if not any(f.match(g) for g in patterns)]
    assert not unmatched, f"not installed with the package: {unmatched}"


@pytest.mark.slow
def test_the_built_wheel_holds_the_models_and_the_demo(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("diffsep-*.whl"))).namelist())
    d = pretrained.demo()
    for m in pretrained.bundled_models().values():
        assert f"diffsep/inference/pretrained/{m.file}" in names and f"diffsep/inference/pretrained/{m.card}" in names
    for p in [d.mix, *d.sources]:
        assert f"diffsep/inference/pretrained/{p.relative_to(pretrained.HERE).as_posix()}" in names
    assert "diffsep/inference/pretrained/models.json" in names


@pytest.mark.parametrize("name", list(pretrained.bundled_models()))
def test_bundled_models_separate_the_demo_as_their_cards_say(name):
    """With its own settings each bundled model improves the demo (two voices it never heard) by
    the SI-SDRi its card and models.json state, and that is an improvement."""
    d = pretrained.demo()
    mix, sr = read_audio(d.mix)
    refs = np.stack([read_audio(p)[0][0] for p in d.sources])
    sep = load_separator(name, device="cpu")
    gain = score_item(separate_signal(sep, mix[0], sr), refs, mix[0], sr, SI_SDRI)["si_sdri"]
    stated = pretrained.bundled(name).scores["demo_si_sdri"]
    assert stated > 0 and gain == pytest.approx(stated, abs=DEMO_TOLERANCE_DB)


@pytest.mark.parametrize("name", ["diffsep-small", "diffsep-tasnet"])
def test_bundled_settings_are_used_and_can_be_overridden(name):
    entry = pretrained.bundled(name)
    sep = load_separator(name, device="cpu")
    assert ("warm_start" in sep.info) == bool(entry.warm_start)
    alone = load_separator(name, device="cpu", warm_start=False, sampler={"kind": "ode", "steps": 2, "solver": "heun"})
    assert "warm_start" not in alone.info and alone.nfe == 3  # Heun: 2 steps, the last one Euler


def test_a_bundled_shift_setting_is_used_and_can_be_overridden():
    """A model listed with ``shifts`` separates averaged over that many input delays (NFE × S)
    unless told otherwise; models without it run once."""
    shifted = [name for name, m in pretrained.bundled_models().items() if m.shifts > 1]
    assert shifted, "no bundled model averages over shifts"
    for name in shifted:
        entry = pretrained.bundled(name)
        sep = load_separator(name, device="cpu")
        assert sep.info["shifts"] == entry.shifts
        once = load_separator(name, device="cpu", shifts=1)
        assert "shifts" not in once.info and sep.nfe == entry.shifts * once.nfe
    plain = [name for name, m in pretrained.bundled_models().items() if m.shifts == 1]
    assert all("shifts" not in load_separator(name, device="cpu").info for name in plain)


def test_list_models_prints_every_model_and_its_numbers(capsys):
    assert separate_main(["--list-models"]) == 0
    out = capsys.readouterr().out
    for m in pretrained.bundled_models().values():
        assert m.name in out and all(f"{v:g}" in out for v in m.scores.values())
    assert f"{pretrained.default_model_name()} (default)" in out


def test_unknown_model_name_is_one_line_naming_the_bundled_ones(tmp_path, capsys):
    assert separate_main([str(pretrained.demo().mix), "-o", str(tmp_path), "--model", "nosuch",
                          "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nosuch" in err and pretrained.default_model_name() in err


def test_demo_command_writes_sources_and_figure_and_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert separate_main(["--demo", "-o", str(out), "--model", "convtasnet-small"]) == 0
    assert {"s1.wav", "s2.wav", "demo.png", "report.html"} <= {p.name for p in out.iterdir()}
    page = (out / "report.html").read_text()  # the listening page: mixture, 2 references, 2 estimates
    assert page.count("<audio ") == 5 and "convtasnet-small" in page and "si_sdri" in page
    text = capsys.readouterr().out
    gain = float(re.search(r"SI-SDRi (-?[\d.]+) dB", text).group(1))
    d = pretrained.demo()
    refs = np.stack([read_audio(p)[0][0] for p in d.sources])
    est = np.stack([read_audio(out / f"s{k + 1}.wav")[0][0] for k in range(2)])
    mix = read_audio(d.mix)[0][0]
    assert gain == pytest.approx(score_item(est, refs, mix, d.sample_rate, SI_SDRI)["si_sdri"], abs=0.01)  # what it printed


def test_separate_without_model_uses_the_bundled_default(tmp_path):
    out = tmp_path / "o"
    assert separate_main([str(pretrained.demo().mix), "-o", str(out), "--quiet"]) == 0
    assert (out / "s1" / "mix.wav").is_file() and (out / "s2" / "mix.wav").is_file()
    expected, _ = separate_file(str(pretrained.demo().mix), model=pretrained.default_model_name())
    np.testing.assert_allclose(read_audio(out / "s1" / "mix.wav")[0][0], np.asarray(expected)[0].reshape(-1),
                               atol=1e-6)


def test_demo_and_inputs_are_exclusive(tmp_path):
    with pytest.raises(SystemExit) as e:
        separate_main(["--demo", str(pretrained.demo().mix), "-o", str(tmp_path)])
    assert e.value.code == 2
