"""The metrics registry: a metric is one function and one entry; --metrics chooses among them."""
import csv
import json

import numpy as np
import pytest

from helpers_audio import write_refs_and_estimates
from diffsep.cli.evaluate import main
from diffsep.evaluation.metrics import METRICS, Metric, choose_metrics


def peak_ratio(est, ref, mix, rate):
    """A toy metric: each estimate's peak over its reference's. (K, C, N) -> (K,)."""
    return np.abs(est).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2))


def test_a_registered_metric_is_computed_and_summarised_without_other_edits(tmp_path, monkeypatch):
    monkeypatch.setitem(METRICS, "peak_ratio", Metric(speech=peak_ratio))
    write_refs_and_estimates(tmp_path, n_items=2)
    out = tmp_path / "res"
    assert main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"), "--out", str(out),
                 "--metrics", "si_sdr,peak_ratio", "--jobs", "0", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"si_sdr", "peak_ratio", "info"}
    assert summary["info"]["metrics"] == ["si_sdr", "peak_ratio"]
    assert summary["peak_ratio"]["count"] == 2 and 0.8 < summary["peak_ratio"]["mean"] < 1.5
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert list(rows[0])[:3] == ["name", "si_sdr", "peak_ratio"]
    assert "| peak_ratio |" in (out / "summary.md").read_text()


def test_an_unknown_metric_is_refused_with_the_valid_names(tmp_path, capsys):
    write_refs_and_estimates(tmp_path, n_items=1)
    assert main(["--est-dir", str(tmp_path / "est"), "--ref-dir", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "res"), "--metrics", "si_sdr,mos", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) mos; valid: si_sdr, si_sdri, sdr, sdri, pesq, estoi, stoi" in err
    assert not (tmp_path / "res" / "summary.json").exists()


def test_the_defaults_follow_the_signal_and_the_perceptual_switch():
    assert choose_metrics(None, "speech") == ("si_sdr", "si_sdri", "sdr", "pesq", "estoi", "stoi")
    assert choose_metrics(None, "speech", perceptual=False) == ("si_sdr", "si_sdri", "sdr")
    assert choose_metrics(None, "music") == ("si_sdr", "si_sdri", "sdr", "sdri")
    assert choose_metrics(["stoi", "si_sdr"], "speech") == ("si_sdr", "stoi")  # registry order
    with pytest.raises(ValueError, match="pesq do not apply to music; valid: si_sdr, si_sdri, sdr, sdri"):
        choose_metrics(["pesq"], "music")
