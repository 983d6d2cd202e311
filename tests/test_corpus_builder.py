"""The corpus builder (diffsep corpus / tools/make_corpus.py) with the stub engine and a fake
realspeech tree: reproducible, resumable, held-out voices only in tt, wsj0-2mix mixtures that
dynamic mixing reads with the right speakers, a manifest with every voice's licence."""
import csv
import json

import numpy as np
import pytest
import soundfile as sf

from diffsep.cli.corpus import main as corpus_main
from diffsep.data import corpus_voices as cv
from diffsep.data.corpus_build import mix_pair, pair_by_length, speech_chunks, tidy
from diffsep.data.corpus_text import sentences
from diffsep.data.dynamic import DynamicMixDataset
from diffsep.data.layouts import Wsj0Mix, wsj0_mix


def _fake_realspeech(root):
    rng = np.random.default_rng(0)
    for corpus, spks, secs, rate in (("librispeech", ("19", "26"), 9.0, 16000),
                                      ("speechocean762", ("0001",), 2.5, 8000)):
        for spk in spks:
            (root / corpus / spk).mkdir(parents=True)
            for u in range(2 if corpus == "speechocean762" else 1):
                x = rng.standard_normal(int(secs * rate)) * np.repeat(rng.uniform(0.01, 0.3, int(secs * 10)), rate // 10)
                sf.write(root / corpus / spk / f"{spk}-{u}.flac", (0.3 * x / np.abs(x).max()).astype(np.float32), rate)
    (root / "speakers.csv").write_text("corpus,speaker,split,sex\nlibrispeech,19,train,F\nlibrispeech,26,train,M\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    _fake_realspeech(base / "rs")
    args = ["--stub", "3", "--stub-test", "2", "--utts-per-voice", "4", "--realspeech", str(base / "rs"),
            "--n-cv", "3", "--n-tt", "4", "--seed", "5", "--quiet"]
    assert corpus_main(["--root", str(base / "a"), *args]) == 0
    return base, args


def _read(path):
    return sf.read(path, dtype="float64")[0]


def test_reproducible_and_resumable(built):
    base, args = built
    utt = next((base / "a" / "utterances" / "stub-00").glob("*.wav"))
    before = utt.stat().st_mtime_ns
    assert corpus_main(["--root", str(base / "a"), *args]) == 0  # again: kept utterances are reused
    assert utt.stat().st_mtime_ns == before
    assert corpus_main(["--root", str(base / "b"), *args]) == 0  # elsewhere: the same corpus
    for split in ("tr", "cv", "tt"):
        a = sorted(p.name for p in (base / "a" / "wav8k/min" / split / "mix").iterdir())
        b = sorted(p.name for p in (base / "b" / "wav8k/min" / split / "mix").iterdir())
        assert a == b and a
        np.testing.assert_array_equal(_read(base / "a/wav8k/min" / split / "mix" / a[0]),
                                      _read(base / "b/wav8k/min" / split / "mix" / a[0]))
    ma, mb = (json.loads((base / d / "manifest.json").read_text()) for d in "ab")
    assert ma["voices"] == mb["voices"] and ma["totals"] == mb["totals"]


def test_splits_voices_and_manifest(built):
    base, _ = built
    root = base / "a"
    m = json.loads((root / "manifest.json").read_text())
    held = {"stub-03", "stub-04"}
    assert {v["id"] for v in m["voices"] if v["split"] == "tt"} == held
    assert all(v["licence"] and v["attribution"] for v in m["voices"])
    assert {v["family"] for v in m["voices"]} == {"stub", "librispeech", "speechocean762"}
    rows = [json.loads(line) for line in (root / "utterances.jsonl").read_text().splitlines()]
    by_split = {s: {r["id"] for r in rows if r["split"] == s} for s in ("tr", "cv", "tt")}
    assert not (by_split["tr"] & by_split["cv"]) and not (by_split["tr"] & by_split["tt"])
    assert {r["voice"] for r in rows if r["split"] == "tt"} == held
    assert not held & {r["voice"] for r in rows if r["split"] != "tt"}
    assert {r["voice"] for r in rows if r["split"] == "cv"} <= {r["voice"] for r in rows if r["split"] == "tr"}
    # a long LibriSpeech recording is cut into pieces of at most 6 s
    ls = [r for r in rows if r["voice"] == "ls-19"]
    assert len(ls) >= 2 and max(r["seconds"] for r in ls) <= 6.0 + 1e-3
    assert m["totals"]["tt"]["mixtures"] == 4 and m["totals"]["cv"]["mixtures"] == 3


def test_mixtures_are_wsj0_2mix_and_dynamic_mixing_reads_the_voices(built):
    base, _ = built
    root = base / "a"
    items = wsj0_mix(root, "tr", 2, 8000)
    info = {r["mixture_ID"]: r for r in csv.DictReader(open(root / "wav8k/min/metadata/mixture_tr_info.csv"))}
    for it in items:
        mix, s1, s2 = (_read(p) for p in (it.mix, *it.sources))
        np.testing.assert_allclose(mix, s1 + s2, atol=2 / 2 ** 15)
        assert np.abs(mix).max() <= 0.9 + 1e-3
        row = info[it.name]
        assert Wsj0Mix.speakers(it) == [row["s1_voice"], row["s2_voice"]] and row["s1_voice"] != row["s2_voice"]
        assert 0 <= float(row["rel_level_db"]) <= 5
    ds = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=1)
    assert set(ds.speaker_names) <= {"stub-00", "stub-01", "stub-02", "ls-19", "ls-26", "so-0001"}
    assert len(ds.speaker_names) >= 4 and ds[0]["sources"].shape == (2, 1, 4000)


def test_no_voice_source_is_a_one_line_error(tmp_path, capsys):
    assert corpus_main(["--root", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training voices" in err


@pytest.mark.parametrize("seconds", [1.0, 7.5, 16.0])
def test_speech_chunks_cover_the_recording(seconds):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(int(seconds * 8000)) * np.repeat(rng.uniform(0, 1, int(seconds * 50) + 1), 160)[:int(seconds * 8000)]
    pieces = speech_chunks(x, 8000)
    np.testing.assert_array_equal(np.concatenate(pieces), x)
    assert all(len(p) <= 6 * 8000 + 2 * 8000 for p in pieces)
    if seconds > 6:
        assert len(pieces) >= 2 and all(len(p) >= 2 * 8000 for p in pieces)


def test_tidy_adds_a_floor_and_trims():
    x = np.concatenate([np.zeros(8000), np.sin(np.arange(8000) * 0.3), np.zeros(8000)]).astype(np.float32)
    y = tidy(x, 8000, seed=0)
    assert len(y) < len(x) and np.count_nonzero(y == 0) == 0
    assert 10 * np.log10(np.mean((y[:100] ** 2))) < -55


def test_mix_pair_levels():
    rng = np.random.default_rng(2)
    mix, s1, s2 = mix_pair(rng.standard_normal(900), 3 * rng.standard_normal(700), 4.0)
    assert len(mix) == 700 and np.isclose(np.abs(mix).max(), 0.9)
    assert np.isclose(10 * np.log10(np.mean(s1 ** 2) / np.mean(s2 ** 2)), 4.0, atol=1e-4)


def test_pairs_by_length_use_each_utterance_once_with_two_voices():
    rng = np.random.default_rng(3)
    rows = [{"id": f"u{i}", "voice": f"v{i % 3}", "seconds": float(rng.uniform(1, 9))} for i in range(31)]
    pairs = pair_by_length(rows, rng)
    used = [r["id"] for p in pairs for r in p]
    assert len(used) == len(set(used)) >= 28 and all(a["voice"] != b["voice"] for a, b in pairs)


def test_sentences_are_seeded():
    a = sentences(np.random.default_rng(4), 5)
    assert a == sentences(np.random.default_rng(4), 5) and a != sentences(np.random.default_rng(5), 5)
    assert all(6 <= len(s.split()) <= 40 for s in a)


def test_kokoro_voices_hold_out_and_mix():
    styles = {n: np.full((4, 1, 256), i, np.float32) for i, n in enumerate(
        ["af_sky", "af_nova", "am_echo", "am_puck", "bf_lily", "bm_fable", "af_bella", "bm_george", "jf_alpha"])}
    train, test = cv.kokoro_voices(styles, cv.KOKORO_TT, n_mixes=3, seed=0)
    assert {v.id for v in test} == {"kok-af-sky", "kok-af-nova", "kok-am-echo", "kok-am-puck", "kok-bf-lily", "kok-bm-fable"}
    held = set(cv.KOKORO_TT)
    for v in train:
        names = [n for n, _ in v.params["mix"]]
        assert not held & set(names) and "_" not in v.id
        assert np.isclose(sum(w for _, w in v.params["mix"]), 1.0)
    assert sum(v.family == "kokoro-mix" for v in train) == 3
    few, _ = cv.kokoro_voices(styles, cv.KOKORO_TT, seed=0, n_stock=2)
    assert [v.id for v in few] == [v.id for v in train[:2]]  # a smaller choice is a prefix
    assert cv.kokoro_lang("bf_emma") == "en-gb" and cv.kokoro_lang("jf_alpha") == "en-us"
    with pytest.raises(RuntimeError, match="held-out"):
        cv.kokoro_voices(styles, ("af_missing",))
