"""report.html in a real browser: headless Chromium (Debian package ``chromium``, which .ci/run
installs) opens the page from file://, as a user's file browser would. Every <audio> element must
load its WAV (no error, the right duration), a click on a column header must sort the per-item
table, and a screenshot is taken. The page's own files are not changed: a copy of the page gets a
probe script that writes what it finds into <pre id=results>, read back with --dump-dom."""
import json
import math
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from diffsep.evaluation.report import write_report
from diffsep.evaluation.results import summary_of

pytestmark = pytest.mark.slow

RATE = 8000
LENGTHS = [4000 + 800 * i for i in range(10)]  # item i lasts LENGTHS[i] / RATE seconds

PROBE = """<script>
(function () {
  var out = document.getElementById('results'), audio = [].slice.call(document.querySelectorAll('audio'));
  var seen = [], left = audio.length;
  function finish() {
    var table = document.getElementById('items'), th = table.querySelectorAll('th');
    var col = [].findIndex.call(th, function (h) { return h.textContent === 'si_sdri'; });
    th[col].click();  // descending
    var names = [].map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
    out.textContent = JSON.stringify({audio: seen, sorted: names});
  }
  audio.forEach(function (a, i) {
    var done = false;
    function record() {
      if (done) { return; }
      done = true;
      seen[i] = {src: a.getAttribute('src'), duration: a.duration, ready: a.readyState,
                 error: a.error ? a.error.code : null};
      if (--left === 0) { finish(); }
    }
    a.addEventListener('loadeddata', record);
    a.addEventListener('error', record);
    a.preload = 'auto';
    a.load();
  });
  if (!audio.length) { finish(); }
})();
</script>"""


def chromium_path() -> str:
    exe = os.environ.get("DIFFSEP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium "
                    "(.ci/run installs it), or set DIFFSEP_CHROMIUM to its path")
    return exe


def chromium(*args: str) -> str:
    """Run headless Chromium with a fresh profile and no network use; -> stdout."""
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--allow-file-access-from-files", "--virtual-time-budget=10000", *args],
            capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def make_report(folder: Path) -> tuple[Path, list[dict]]:
    rng = np.random.default_rng(0)
    rows = [{"name": f"utt{i}", "si_sdri": float(v), "si_sdr": float(v) + 1} for i, v in
            enumerate(rng.permutation(10) * 1.5 - 3)]

    def load(name):
        n = LENGTHS[int(name[3:])]
        t = np.arange(n) / RATE
        ref = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sign(np.sin(2 * np.pi * 90 * t))])
        return ref + 0.03 * rng.standard_normal(ref.shape), ref, ref.sum(0), RATE

    info = {"model": "diffsep-small", "sampler": {"kind": "pc", "steps": 30}, "nfe": 60,
            "dataset": "folder", "split": "tt"}
    return write_report(folder, rows, summary_of(rows, ["si_sdri", "si_sdr"]), info, load), rows


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_plays_every_audio_sorts_and_renders_in_chromium(tmp_path):
    page, rows = make_report(tmp_path / "report")
    probe = page.with_name("probe.html")  # beside the page: the same relative links
    probe.write_text(page.read_text().replace("</body>", "<pre id=results>pending</pre>" + PROBE + "</body>"))
    dom = chromium("--dump-dom", probe.as_uri())
    start = dom.index("<pre id=\"results\">") + len("<pre id=\"results\">")
    text = dom[start:dom.index("</pre>", start)]
    assert text != "pending", "the audio elements did not all load or fail within the time budget"
    found = json.loads(text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert len(found["audio"]) == 9 * 5  # 3 best, 3 median, 3 worst: mixture, 2 references, 2 estimates
    for a in found["audio"]:
        item = int(a["src"].split("/")[1].split("_utt")[1])
        assert a["error"] is None and a["ready"] >= 2, a  # decoded, not only its header read
        assert math.isclose(a["duration"], LENGTHS[item] / RATE, abs_tol=2e-3), a
    by_score = [r["name"] for r in sorted(rows, key=lambda r: -r["si_sdri"])]
    assert found["sorted"] == by_score

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1500", page.as_uri())
    assert png_size(shot) == (1200, 1500)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not a blank page: tables, players and spectrograms drawn
