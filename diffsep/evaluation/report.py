"""A listening report: OUT/report.html and OUT/report_files/, one folder that opens from a file
browser (relative links, no network, no scripts but the page's own).

The page holds a summary table (mean and median of each metric; model, sampler, NFE, the data
scored); for the best, median and worst few items, their scores and the mixture, references and
estimates as audio players (16-bit PCM WAV at the scoring rate), each above its spectrogram; and a
per-item table sorted by clicking a column header.

Items are ranked by the first of :data:`RANKING` that was scored (higher is better for every
metric). Their audio is not kept while scoring: :func:`write_report` calls ``load(name)`` for the
few it shows (re-reading the estimates, or separating the item again with its seed).

Signals: est, ref (K, C, N) or (K, N); mix (C, N), (N,) or None.
"""
from __future__ import annotations

import html
import math
import re
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..storage.atomic import write_text_atomic
from .results import finite
from .scoring import degenerate, match_sources

RANKING = ("si_sdri", "si_sdr", "sdri", "sdr")
FOLDER = "report_files"
PEAK = 0.99  # an item whose loudest signal is louder is scaled down as a whole (16-bit PCM clips)


def ranking_key(rows: list[dict], keys: Sequence[str] = ()) -> str | None:
    """The metric items are ranked by: the first of RANKING, then of ``keys``, that some row has."""
    for key in (*RANKING, *keys):
        if any(finite(r.get(key)) or r.get(key) == -math.inf for r in rows):
            return key
    return None


def pick_items(rows: list[dict], key: str | None, n: int = 3) -> list[tuple[str, str]]:
    """(group, name) of the ``n`` best, ``n`` median and ``n`` worst items by ``key`` (a degenerate
    −inf item counts as the worst; NaN items are not ranked), each item once: with fewer than
    3 n ranked items the median group is smaller or empty; a single item has no group (""). Best
    first, then median, then worst (the worst last)."""
    if key is None:
        return []
    ranked = sorted((r for r in rows if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])),
                    key=lambda r: -r[key])
    m = len(ranked)
    if m == 1:
        return [("", ranked[0]["name"])]
    best = list(range(min(n, m)))
    worst = list(range(max(m - n, len(best)), m))
    middle = range(len(best), worst[0] if worst else m)
    median = sorted(sorted(middle, key=lambda i: (abs(i - (m - 1) / 2), i))[:n])
    return [(group, ranked[i]["name"]) for group, idx in (("best", best), ("median", median), ("worst", worst))
            for i in idx]


def listening_loader(examples: Iterable[tuple[str, Callable]], fixed_order: bool = False) -> Callable[[str], tuple]:
    """load(name) for :func:`write_report` from the :data:`~.scoring.Example` s that were scored:
    loads the item again (re-reads, or re-separates with its seed) and matches the estimates to
    the references as scoring did (unless ``fixed_order``). -> (est, ref, mix, rate)."""
    loads = dict(examples)

    def load(name: str) -> tuple:
        est, ref, mix, rate, _ = loads[name]()
        est, ref = _channels(est, 3), _channels(ref, 3)
        if not fixed_order and degenerate(est) is None:
            est = match_sources(est, ref)
        return est, ref, mix, rate
    return load


def write_report(out_dir: Path, rows: list[dict], summary: dict, info: dict,
                 load: Callable[[str], tuple] | None, *, n: int = 3, title: str = "Listening report",
                 source_names: Sequence[str] = (), on_error: Callable[[str, str], None] | None = None,
                 progress: bool = False) -> Path:
    """Write OUT/report.html (and OUT/report_files/) and return its path.

    rows, summary: per-item rows and per-metric statistics (see :mod:`.results`); info: how they
    were made (model, sampler, nfe, dataset, split, rtf, ...). load(name) -> (est, ref or None,
    mix or None, rate) with the estimates in the references' order; None: no audio section.
    source_names: labels of the K sources (default: info's ``stems``, else s1 ... sK).
    on_error(name, message): called for an item whose audio cannot be loaded (it is then left out
    of the audio section); None: raise. progress: a progress bar (per item loaded) on stderr."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    files = out_dir / FOLDER
    if files.is_dir():  # a previous report's items
        shutil.rmtree(files)
    files.mkdir(parents=True, exist_ok=True)
    key = ranking_key(rows, list(summary))
    source_names = list(source_names or info.get("stems") or ())
    metrics = [k for k in summary if any(k in r for r in rows)]
    cards, rates = [], set()
    if load is not None:
        for j, (group, name) in enumerate(tqdm(pick_items(rows, key, n), desc="report", unit="item",
                                               disable=not progress)):
            row = next(r for r in rows if r["name"] == name)
            folder = f"{j:02d}_{_slug(name)}"
            try:
                est, ref, mix, rate = load(name)
                players = write_item_audio(files / folder, est, ref, mix, rate, source_names=source_names)
            except (OSError, RuntimeError, ValueError) as e:
                if on_error is None:
                    raise
                on_error(name, str(e))
                continue
            cards.append(_card(group, row, metrics, f"{FOLDER}/{folder}", players))
            rates.add(rate)
    body = [f"<h1>{_e(title)}</h1>", _about(info, len(rows), key), "<h2>Summary</h2>", _summary_table(summary)]
    if cards:
        ranked = f"Best, median and worst items by {_e(key)}. " if len(rows) > 1 else ""
        body += ["<h2>Listen</h2>", f"<p class=note>{ranked}"
                 "Each item's signals share one gain (scaled down only if one would clip); spectrograms: "
                 f"log magnitude, 80 dB range, 0 to {'/'.join(f'{r / 2000:g}' for r in sorted(rates))} kHz.</p>", *cards]
    body += ["<h2>All items</h2><p class=note>Click a column header to sort.</p>", _rows_table(rows, metrics)]
    page = _PAGE.format(title=_e(title), style=_STYLE, body="\n".join(body), script=_SCRIPT)
    path = out_dir / "report.html"
    write_text_atomic(path, page)
    return path


def write_item_audio(folder: Path, est, ref, mix, rate: int, source_names: Sequence[str] = ()) -> list[list]:
    """FOLDER/{mix, NAME_ref, NAME_est}.wav (16-bit PCM, one common gain) with a spectrogram PNG
    beside each. -> rows of (label, file stem): [mixture] if given, then [reference, estimate] (or
    [estimate] without references) of each source."""
    from ..storage.audio import write_audio_group

    est = _channels(est, 3)
    ref = None if ref is None else _channels(ref, 3)
    mix = None if mix is None else _channels(mix, 2)
    names = list(source_names) or [f"s{k + 1}" for k in range(len(est))]
    rows = [[("mixture", "mix", mix)]] if mix is not None else []
    for k, name in enumerate(names[:len(est)]):
        row = [(f"reference {name}", f"{_slug(name)}_ref", ref[k])] if ref is not None else []
        rows.append(row + [(f"estimate {name}", f"{_slug(name)}_est", est[k])])
    signals = [s for row in rows for s in row]
    peak = max(float(np.abs(x[np.isfinite(x)]).max(initial=0.0)) for _, _, x in signals)
    gain = PEAK / peak if peak > PEAK else 1.0
    write_audio_group([(folder / f"{f}.wav", np.nan_to_num(x * gain).astype(np.float32)) for _, f, x in signals],
                      rate, subtype="PCM_16")
    spectrogram_images([(folder / f"{f}.png", x.mean(0)) for _, f, x in signals], rate)
    return [[(label, f) for label, f, _ in row] for row in rows]  # the mixture's row first, if any


def spectrogram_images(items: list[tuple[Path, np.ndarray]], rate: int, width: int = 320) -> None:
    """One small PNG per signal (path, x (N,)): its log-magnitude spectrogram, low frequencies at
    the bottom, on a common 80 dB scale, at most ``width`` pixels wide (frames averaged)."""
    from matplotlib import colormaps
    from PIL import Image

    from ..storage.atomic import atomic_path
    from .figures import spectrogram_db

    n_fft = 512 if rate >= 16000 else 256
    specs = [spectrogram_db(np.nan_to_num(x), n_fft, n_fft // 4) for _, x in items]
    vmax = max(s.max() for s in specs)
    palette = colormaps["magma"](np.linspace(0, 1, 256), bytes=True)[:, :3].ravel().tolist()
    for (path, _), spec in zip(items, specs):
        step = -(-spec.shape[1] // width)
        if step > 1:
            frames = spec.shape[1] // step * step
            spec = spec[:, :frames].reshape(spec.shape[0], -1, step).mean(-1)
        level = np.round(np.clip((spec[::-1] - vmax + 80) / 80, 0, 1) * 255).astype(np.uint8)
        image = Image.fromarray(level)
        image.putpalette(palette)  # 8 bits a pixel: the levels index magma's colours
        with atomic_path(path) as tmp:
            image.save(tmp, format="png", optimize=True)


def _channels(x, ndim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == ndim else x[..., None, :]


def _slug(name: str) -> str:
    """A file name from an item name (any characters, sub-folders): safe in a URL and a folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")[:60] or "item"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "–" if v is None else _e(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}" if math.isfinite(v) else {math.inf: "inf", -math.inf: "−inf"}.get(v, "NaN")


def _about(info: dict, n_rows: int, key: str | None) -> str:
    """The run's description: model, sampler, NFE, the data, counts."""
    sampler = info.get("sampler")
    if isinstance(sampler, dict):
        sampler = ", ".join(f"{k} {v}" for k, v in sampler.items())
    warm = info.get("warm_start")
    data = " / ".join(str(info[k]) for k in ("dataset", "split") if info.get(k))
    if not data and info.get("est_dir"):
        data = f"estimates {info['est_dir']} against references {info['ref_dir']}"
    facts = [("model", info.get("model")), ("family", info.get("kind")), ("sampler", sampler),
             ("warm start", warm.get("kind") if isinstance(warm, dict) else warm), ("NFE", info.get("nfe")),
             ("data", data or info.get("data")), ("items scored", n_rows), ("items failed", info.get("failed")),
             ("real-time factor", info.get("rtf")), ("ranked by", key if n_rows > 1 else None)]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_num(v) if isinstance(v, float) else _e(v)}</td></tr>"
                    for k, v in facts if v not in (None, ""))
    return f"<table class=about>{cells}</table>"


def _summary_table(summary: dict) -> str:
    head = "<tr><th>metric</th><th>mean</th><th>median</th><th>95% CI</th><th>count</th><th>excluded</th></tr>"
    lines = []
    for key, s in summary.items():
        ci = s.get("ci95")
        ci = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci and s.get("count", 0) > 1 else "–"
        lines.append(f"<tr><td>{_e(key)}</td><td>{_num(s.get('mean'))}</td><td>{_num(s.get('median'))}</td>"
                     f"<td>{ci}</td><td>{s.get('count', 0)}</td><td>{len(s.get('excluded', {}))}</td></tr>")
    return f"<table class=summary>{head}{''.join(lines)}</table>"


def _card(group: str, row: dict, metrics: list[str], folder: str, players: list[list]) -> str:
    """One item: its scores, then a grid: the mixture in the first column, a source per row."""
    scores = " · ".join(f"{_e(k)} {_num(row.get(k))}" for k in metrics if k in row)
    problem = f" <span class=problem>{_e(row['problem'])}</span>" if row.get("problem") else ""
    mixed = bool(players) and players[0][0][1] == "mix"
    placed = [(1, 1, players[0][0])] if mixed else []
    placed += [(k + 1, c + 1 + mixed, signal) for k, line in enumerate(players[mixed:]) for c, signal in enumerate(line)]
    cells = "".join(
        f"<figure style=\"grid-row:{r};grid-column:{c}\"><figcaption>{_e(label)}</figcaption>"
        f"<audio controls preload=metadata src=\"{_e(folder)}/{_e(f)}.wav\"></audio>"
        f"<img src=\"{_e(folder)}/{_e(f)}.png\" alt=\"spectrogram: {_e(label)}\"></figure>"
        for r, c, (label, f) in placed)
    tag = f"<span class=tag>{group}</span> " if group else ""
    return (f"<section class=\"item {group}\"><h3>{tag}{_e(row['name'])}</h3>"
            f"<p class=scores>{scores}{problem}</p><div class=grid>{cells}</div></section>")


def _rows_table(rows: list[dict], metrics: list[str]) -> str:
    extra = [k for k in ("rtf", "runtime_s", "duration_s") if any(k in r for r in rows)]
    cols = ["name", *metrics, *extra]
    head = "".join(f"<th data-col={i}>{_e(c)}</th>" for i, c in enumerate(cols))
    body = []
    for r in rows:
        cells = [f"<td>{_e(r['name'])}</td>"]
        for c in cols[1:]:
            v = r.get(c)
            sort = v if isinstance(v, (int, float)) and not math.isnan(v) else ""
            sort = {math.inf: "1e308", -math.inf: "-1e308"}.get(sort, sort)
            cells.append(f"<td data-v=\"{sort}\">{_num(v)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table id=items class=sortable><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, .about th, .about td { text-align: left; }
.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
.sortable th.asc::after { content: " ▲"; } .sortable th.desc::after { content: " ▼"; }
.note { color: #666; }
.item { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; margin: 1em 0; }
.item h3 { margin: .2em 0; } .scores { margin: .2em 0 .5em; color: #444; }
.tag { font-size: 11px; text-transform: uppercase; padding: 1px 6px; border-radius: 3px; color: #fff; }
.best .tag { background: #2a7; } .median .tag { background: #68a; } .worst .tag { background: #c54; }
.problem { color: #c54; }
.grid { display: grid; grid-template-columns: repeat(3, 320px); gap: 8px 16px; margin-bottom: 8px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
figure audio { width: 100%; height: 32px; display: block; }
figure img { width: 100%; height: 90px; display: block; image-rendering: auto; }
"""

# sorts #items by the clicked column: numbers by their data-v value (empty: NaN, last), names as text
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var down = !th.classList.contains('desc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(down ? 'desc' : 'asc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function value(r) {
        var c = r.cells[col];
        return c.hasAttribute('data-v') ? (c.getAttribute('data-v') === '' ? NaN : +c.getAttribute('data-v'))
                                        : c.textContent;
      }
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (typeof x === 'string') { return (down ? -1 : 1) * x.localeCompare(y); }
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return down ? y - x : x - y;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
