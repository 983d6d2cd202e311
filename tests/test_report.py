"""The listening report (diffsep/evaluation/report.py): which items it plays, the folder it writes,
and ``diffsep evaluate --report`` in both modes. The page in a real browser: test_report_browser.py."""
import math
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings, strategies as st

from diffsep.evaluation.report import PEAK, listening_loader, pick_items, write_report
from diffsep.evaluation.results import summary_of
from diffsep.evaluation.scoring import Scoring, score_item

RATE = 8000


class Page(HTMLParser):
    """The links of a page (audio / img / script sources, hrefs) and the text of its table cells."""

    def __init__(self, text: str):
        super().__init__()
        self.audio, self.images, self.external, self.cells, self.scripts = [], [], [], [], 0
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a["src"])
        if tag == "img":
            self.images.append(a["src"])
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a and (":" in a[key] or a[key].startswith(("/", "//"))):
                self.external.append(a[key])
        if tag == "td":
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell)
            self._cell = None


def signals(seed: int, n: int = 3000, K: int = 2):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((K, n)) * 0.2
    return ref + 0.05 * rng.standard_normal((K, n)), ref, ref.sum(0)


def rows_for(values):
    return [{"name": f"utt{i}", "si_sdri": v, "si_sdr": 1.0} for i, v in enumerate(values)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-50, 50), st.just(-math.inf), st.just(math.nan)), max_size=30),
       st.integers(1, 4))
def test_picked_items_are_the_best_median_and_worst_each_once(values, n):
    rows = rows_for(values)
    picked = pick_items(rows, "si_sdri", n)
    names = [name for _, name in picked]
    ranked = sorted((r for r in rows if not math.isnan(r["si_sdri"])), key=lambda r: -r["si_sdri"])
    m = len(ranked)
    assert len(names) == len(set(names)) == min(m, 3 * n)  # each item once, NaN items never
    if m == 1:
        assert picked == [("", ranked[0]["name"])]
        return
    value = {r["name"]: r["si_sdri"] for r in rows}
    group = {g: [value[name] for gg, name in picked if gg == g] for g in ("best", "median", "worst")}
    top = sorted((r["si_sdri"] for r in ranked), reverse=True)
    assert group["best"] == top[:min(n, m)]
    assert sorted(group["worst"], reverse=True) == top[len(group["best"]):][-n:]
    for v in group["median"]:
        assert min(group["best"]) >= v >= max(group["worst"])
    if m >= 3 * n:  # the median group straddles the middle rank
        ranks = sorted(i for i, r in enumerate(ranked) if r["name"] in
                       {name for g, name in picked if g == "median"})
        assert len(ranks) == n and ranks[0] <= (m - 1) / 2 <= ranks[-1] + (n == 1) * 0.5


def test_report_folder_is_self_contained_and_plays_the_chosen_items(tmp_path):
    values = [3.0, -1.0, 12.0, 7.5, -math.inf, 5.0, 9.0, 0.5, 2.0, 4.0, math.nan]
    rows = rows_for(values)
    rows[0]["name"] = "odd/<name> & 'quotes'"  # escaped in the page, a safe folder name on disk
    rows[4]["problem"] = "estimate s1 is silent"
    loaded = []

    def load(name):
        loaded.append(name)
        est, ref, mix = signals(len(loaded), n=2000 + 100 * len(loaded))
        return est, ref, mix, RATE

    info = {"model": "m.pt", "sampler": {"kind": "pc", "steps": 30}, "nfe": 60, "dataset": "wsj0_mix", "split": "tt"}
    path = write_report(tmp_path / "out", rows, summary_of(rows, ["si_sdri", "si_sdr"]), info, load)
    text = path.read_text()
    page = Page(text)
    assert len(loaded) == 9 and loaded[0] == "utt2" and loaded[-1] == "utt4"  # best first, −inf worst last
    assert page.external == [] and page.scripts == 1  # no network, one inline script
    assert "<name>" not in text and "odd/&lt;name&gt; &amp; " in text
    assert len(page.audio) == 9 * 5 and len(page.images) == 9 * 5  # mixture, 2 references, 2 estimates
    for j, src in enumerate(page.audio[::5]):
        n = 2000 + 100 * (j + 1)
        f = path.parent / src
        assert f.is_file() and f.resolve().is_relative_to(path.parent.resolve())
        info_ = sf.info(f)
        assert (info_.samplerate, info_.frames, info_.subtype) == (RATE, n, "PCM_16")
    for src in page.images:
        assert (path.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(c == r["name"] for r in rows for c in page.cells) == len(rows)  # the per-item table
    for word in ("m.pt", "steps 30", "wsj0_mix / tt", "estimate s1 is silent"):
        assert word in text


def test_report_audio_keeps_relative_levels_and_never_clips(tmp_path):
    est, ref, mix = signals(0)
    est[1] *= 40  # far above full scale
    path = write_report(tmp_path, rows_for([1.0]), {}, {}, lambda name: (est, ref, mix, RATE))
    folder = path.parent / Page(path.read_text()).audio[0].rsplit("/", 1)[0]
    written = {f.stem: sf.read(f)[0] for f in folder.glob("*.wav")}
    peak = max(np.abs(x).max() for x in written.values())
    assert PEAK - 1e-3 < peak <= PEAK + 1e-4
    gain = written["mix"].std() / mix.std()
    assert written["s2_est"].std() / est[1].std() == pytest.approx(gain, rel=1e-3)
    assert written["s1_ref"].std() / ref[0].std() == pytest.approx(gain, rel=1e-3)


def test_listening_loader_matches_the_estimates_to_the_references():
    est, ref, mix = signals(1)
    swapped = [("a", lambda: (est[::-1], ref, mix, RATE, {}))]
    got = listening_loader(swapped)("a")[0]
    assert np.allclose(got[:, 0], est)
    assert np.allclose(listening_loader(swapped, fixed_order=True)("a")[0][:, 0], est[::-1])


def test_evaluate_report_in_folder_mode_plays_the_matched_estimates(tmp_path):
    from helpers_audio import write_refs_and_estimates

    from diffsep.cli.evaluate import main

    write_refs_and_estimates(tmp_path, n_items=3)
    out = tmp_path / "res"
    assert main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out", str(out),
                 "--no-perceptual", "--quiet", "--report"]) == 0
    page = Page((out / "report.html").read_text())
    assert len(page.audio) == 3 * 5
    for src in page.audio[::5]:  # every item, with its estimates in the references' order
        folder = out / src.rsplit("/", 1)[0]
        x = {k: sf.read(folder / f"{k}.wav")[0] for k in ("mix", "s1_ref", "s2_ref", "s1_est", "s2_est")}
        est, ref = np.stack([x["s1_est"], x["s2_est"]]), np.stack([x["s1_ref"], x["s2_ref"]])
        in_order = score_item(est, ref, x["mix"], RATE, Scoring(fixed_order=True))["si_sdr"]
        assert in_order == pytest.approx(10.0, abs=0.1)  # odd items' estimate files are swapped


def test_evaluate_report_in_model_mode_separates_the_items_again_the_same_way(tmp_path, tiny_checkpoint):
    import csv

    from helpers_audio import make_mix_tree

    from diffsep.cli.evaluate import main

    make_mix_tree(tmp_path / "data" / "tt", n_items=2, n=2000)
    out = tmp_path / "res"
    assert main(["--model", str(tiny_checkpoint), "--data-root", str(tmp_path / "data"), "--dataset", "folder",
                 "--split", "tt", "--out", str(out), "--jobs", "0", "--no-perceptual", "--quiet", "--report",
                 "--device", "cpu", "--seed", "3"]) == 0
    rows = {r["name"]: float(r["si_sdr"]) for r in csv.DictReader((out / "results.csv").open())}
    text = (out / "report.html").read_text()
    page = Page(text)
    assert "steps 2" in text and str(tiny_checkpoint) in text
    for src in page.audio[::5]:
        folder = out / src.rsplit("/", 1)[0]
        name = folder.name.split("_", 1)[1]
        x = {k: sf.read(folder / f"{k}.wav")[0] for k in ("mix", "s1_ref", "s2_ref", "s1_est", "s2_est")}
        est, ref = np.stack([x["s1_est"], x["s2_est"]]), np.stack([x["s1_ref"], x["s2_ref"]])
        # the audio on the page is the estimate that was scored (16-bit, so to 0.05 dB)
        assert score_item(est, ref, x["mix"], RATE)["si_sdr"] == pytest.approx(rows[name], abs=0.05)


def test_an_item_that_cannot_be_loaded_is_reported_and_left_out(tmp_path):
    rows = rows_for([1.0, 2.0, 3.0])
    errors = []

    def load(name):
        if name == "utt1":
            raise RuntimeError("out of memory")
        return (*signals(0, n=500), RATE)

    path = write_report(tmp_path, rows, summary_of(rows, ["si_sdri"]), {}, load, n=1,
                        on_error=lambda name, message: errors.append((name, message)))
    page = Page(path.read_text())
    assert errors == [("utt1", "out of memory")]
    assert len(page.audio) == 2 * 5 and all("utt1" not in src for src in page.audio)
    assert sum(c == "utt1" for c in page.cells) == 1  # still in the per-item table
    with pytest.raises(RuntimeError, match="out of memory"):
        write_report(tmp_path, rows, {}, {}, load, n=1)
