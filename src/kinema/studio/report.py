"""What a storyboard run made, for people: a PNG contact sheet and a self-contained HTML report.

The contact sheet is one row per shot: a label band (kept seed, takes, QA score, world
verdict, temporal flags, the prompt) over frames of the kept take spaced evenly through
the shot, numbered by their frame in the finished clip, and a line per seam. The HTML
report holds everything a reviewer needs with no network: the sheet and every take's
first, middle and last frame inline as PNG data URIs, each shot's prompt, seeds, takes
with their scores and flags, what was retaken and why, the kept take's QA numbers, the
transitions and the seams. Text from the board is escaped.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import cv2
import numpy as np

from kinema.io.atomic import replacing
from kinema.io.video import encode_png

SHEET_COLUMNS = 8  # frames shown per shot
CELL_WIDTH = 112
LINE = 15  # pixels per text line
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, DIM, RED, GREEN = (235, 235, 235), (150, 150, 150), (235, 80, 80), (100, 210, 120)
BACKDROP = (24, 24, 28)
THUMB_HEIGHT = 72


def _ascii(text: str) -> str:
    """OpenCV's fonts draw ASCII only."""
    return text.encode("ascii", "replace").decode()


def _put(img: np.ndarray, text: str, x: int, y: int, colour, scale: float = 0.4) -> None:
    cv2.putText(img, _ascii(text), (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def _verdict(qa: dict) -> str:
    world = {None: "no world check", True: "world pass", False: "world FAIL"}[qa["world_pass"]]
    return f"score {qa['score']:.2f}  {world}  flags: {', '.join(qa['flags']) or 'none'}"


def contact_sheet(run) -> np.ndarray:
    """The contact sheet of a BoardRun as an RGB image (H, W, 3) uint8."""
    video = run.video
    cell_h = max(8, round(CELL_WIDTH * video.height / video.width))
    width = SHEET_COLUMNS * (CELL_WIDTH + 4) + 4
    seams = {s["into_shot"]: s for s in run.seams}  # drawn on the shot each joins into
    rows = []
    for r in run.shots:
        frames = r.choice.video.frames
        picks = sorted(
            set(np.linspace(0, len(frames) - 1, min(len(frames), SHEET_COLUMNS)).round().astype(int))
        )
        band = 3 * LINE + 4
        row = np.full((band + cell_h + LINE + 4, width, 3), BACKDROP, np.uint8)
        best = r.choice.best
        takes = len(r.choice.takes)
        retakes = len(r.choice.retaken)
        head = f"shot {r.shot.index}  seed {best.seed}  (best of {takes} take{'s' * (takes > 1)}"
        head += f", {retakes} retake{'s' * (retakes != 1)})" if retakes else ")"
        _put(row, head + f"  <- {r.shot.transition}", 4, LINE - 3, INK)
        _put(row, _verdict(best.qa), 4, 2 * LINE - 3, GREEN if best.passed else RED)
        _put(row, r.shot.prompt[:120], 4, 3 * LINE - 3, DIM)
        interp = cv2.INTER_AREA if video.width > CELL_WIDTH else cv2.INTER_NEAREST
        for c, i in enumerate(picks):
            x = 4 + c * (CELL_WIDTH + 4)
            row[band : band + cell_h, x : x + CELL_WIDTH] = cv2.resize(
                frames[i], (CELL_WIDTH, cell_h), interpolation=interp
            )
            _put(row, f"frame {r.start + i}", x + 2, band + cell_h + LINE - 3, DIM, 0.35)
        rows.append(row)
        seam = seams.get(r.shot.index)
        if seam is not None:
            line = np.full((LINE + 6, width, 3), BACKDROP, np.uint8)
            verdict = {None: "not judged", True: "ok", False: "FAILS the seam rule"}[seam["ok"]]
            text = (
                f"seam at frame {seam['frame']} ({seam['transition']}): difference {seam['difference']:.2f}"
                f" = {seam['ratio']:.2f}x the median inner step, {verdict}"
            )
            _put(line, text, 4, LINE, {None: DIM, True: GREEN, False: RED}[seam["ok"]])
            cv2.line(line, (0, 2), (width - 1, 2), (70, 70, 70), 1)
            rows.append(line)
    return np.concatenate(rows, axis=0)


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _strip(thumbs: np.ndarray) -> np.ndarray:
    """A take's thumbnails side by side, scaled to THUMB_HEIGHT."""
    h, w = thumbs.shape[1:3]
    scale = THUMB_HEIGHT / h
    size = (max(1, round(w * scale)), THUMB_HEIGHT)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    gap = np.full((THUMB_HEIGHT, 3, 3), BACKDROP, np.uint8)
    parts = []
    for t in thumbs:
        parts += [cv2.resize(t, size, interpolation=interp), gap]
    return np.concatenate(parts[:-1], axis=1)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1d1d1f;padding:0 1em}
h1{margin-bottom:.2em} .meta{color:#666} table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f6} .ok{color:#147a2e} .bad{color:#b3261e;font-weight:600} .dim{color:#888}
.kept{background:#eef8ef} img{image-rendering:pixelated;max-width:100%} section{margin:1.6em 0}
code{background:#f4f4f6;padding:0 3px}
"""


def _mark(value: bool | None, yes: str = "pass", no: str = "fail", none: str = "—") -> str:
    if value is None:
        return f'<span class="dim">{none}</span>'
    return f'<span class="ok">{yes}</span>' if value else f'<span class="bad">{no}</span>'


def html_report(run, title: str = "storyboard") -> str:
    """The HTML report of a BoardRun as one self-contained document (no external links)."""
    e = html.escape
    s = run.settings
    takes = [t for r in run.shots for t in r.choice.takes]
    judged = [x for x in run.seams if x["ok"] is not None]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)} · kinema storyboard report</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">kinema storyboard run · board <code>{e(str(s.get("board", "")))}</code> · model '
        f"{e(str(s.get('model')))} <code>{e(str(s.get('model_hash') or '')[:16])}</code> · "
        f"{run.video.num_frames} frames at {run.video.fps:g} fps ({run.video.seconds:.2f} s), "
        f"{run.video.width}×{run.video.height} · sampler steps {e(str(s.get('steps') or 'model default'))}</p>",
        "<h2>Summary</h2><table>",
        f"<tr><th>shots</th><td>{len(run.shots)}</td></tr>",
        f"<tr><th>takes</th><td>{len(takes)} ({sum(not t.cached for t in takes)} made, "
        f"{sum(t.cached for t in takes)} from the cache)</td></tr>",
        f"<tr><th>retakes</th><td>{sum(len(r.choice.retaken) for r in run.shots)}</td></tr>",
        f"<tr><th>shots whose kept take passed QA</th><td>{sum(r.choice.best.passed for r in run.shots)} of "
        f"{len(run.shots)}</td></tr>",
        f"<tr><th>continue seams within {judged[0]['limit'] if judged else 1.5}× the median inner step</th>"
        f"<td>{sum(x['ok'] for x in judged)} of {len(judged)}</td></tr>",
        "</table>",
        "<h2>Contact sheet</h2>",
        f'<img alt="contact sheet: frames of every shot" src="{_data_uri(contact_sheet(run))}">',
        "<h2>Shots</h2>",
    ]
    for r in run.shots:
        out += _shot_section(r)
    out += [
        "<h2>Seams</h2>",
        "<p>Mean absolute frame difference across each boundary, against the median of the steps "
        "inside the shots. The rule (≤ the limit) is judged for <code>continue</code>; cuts and "
        "crossfades change the picture on purpose.</p>",
        "<table><tr><th>after shot</th><th>transition</th><th>at frame</th><th>difference</th>"
        "<th>median inner</th><th>ratio</th><th>limit</th><th>verdict</th></tr>",
    ]
    for x in run.seams:
        out.append(
            f"<tr><td>{x['after_shot']}</td><td>{e(x['transition'])}</td><td>{x['frame']}</td>"
            f"<td>{x['difference']:.3f}</td><td>{x['median_inner']:.3f}</td><td>{x['ratio']:.3f}</td>"
            f"<td>{x['limit'] if x['limit'] is not None else '—'}</td>"
            f"<td>{_mark(x['ok'], 'ok', 'fails', 'not judged')}</td></tr>"
        )
    if not run.seams:
        out.append('<tr><td colspan="8" class="dim">one shot: no seams</td></tr>')
    out += ["</table>", "</body></html>"]
    return "\n".join(out) + "\n"


def _shot_section(r) -> list[str]:
    e = html.escape
    choice, shot = r.choice, r.shot
    best = choice.best
    out = [
        f'<section id="shot-{shot.index}"><h3>Shot {shot.index}: {e(shot.prompt)}</h3>',
        "<table>",
        f"<tr><th>frames</th><td>{shot.frames} (from frame {r.start} of the clip)</td></tr>",
        f"<tr><th>transition from the shot before</th><td>{e(shot.transition)}</td></tr>",
        f"<tr><th>kept</th><td>seed {best.seed} ({best.kind}), score {best.qa['score']:.3f}, "
        f"{_mark(best.passed, 'passed QA', 'did not pass QA')}</td></tr>",
        f"<tr><th>takes</th><td>{shot.candidates} candidate{'s' * (shot.candidates > 1)}, up to "
        f"{shot.retakes} retake{'s' * (shot.retakes != 1)}, QA threshold {choice.threshold:g}</td></tr>",
        f"<tr><th>world check</th><td>{_mark(best.qa['world_pass'], none='not a shapes-world prompt')}"
        + "".join(f"<br>{e(x)}" for x in best.qa["world_reasons"])
        + "</td></tr>",
        "</table>",
        "<h4>QA of the kept take</h4>",
        "<table><tr><th>measure</th><th>VBench dimension</th><th>value</th><th>threshold</th><th>flag</th></tr>",
    ]
    for name, m in best.qa["metrics"].items():
        out.append(
            f"<tr><td>{e(name)}</td><td>{e(str(m.get('vbench', '')))}</td><td>{m['value']}</td>"
            f"<td>{m['threshold']}</td><td>{_mark(not m['flag'], 'clean', 'flagged')}</td></tr>"
        )
    out += [
        "</table>",
        "<h4>Takes</h4>",
        "<table><tr><th>#</th><th>seed</th><th>kind</th><th>first · middle · last</th><th>score</th>"
        "<th>world</th><th>QA</th><th>temporal flags</th><th>why (retake) / world reasons</th>"
        "<th>source</th></tr>",
    ]
    for k, t in enumerate(choice.takes):
        why = [f"<b>retake:</b> {e(t.why)}"] if t.why else []
        why += [e(x) for x in t.qa["world_reasons"][:3]]
        kept = k == choice.chosen
        out.append(
            f"<tr{' class=kept' if kept else ''}><td>{k + 1}{' (kept)' if kept else ''}</td><td>{t.seed}</td>"
            f'<td>{t.kind}</td><td><img alt="take {k + 1}" src="{_data_uri(_strip(t.thumbs))}"></td>'
            f"<td>{t.qa['score']:.3f}</td><td>{_mark(t.qa['world_pass'])}</td><td>{_mark(t.passed)}</td>"
            f"<td>{e(', '.join(t.qa['flags']) or 'none')}</td><td>{'<br>'.join(why)}</td>"
            f"<td>{'cache' if t.cached else 'made'}</td></tr>"
        )
    out.append("</table>")
    out += [f'<p class="bad">{e(note)}</p>' for note in choice.notes]
    out.append("</section>")
    return out


def write_report(run, path: str | os.PathLike, title: str = "storyboard") -> Path:
    """Write the HTML report of a BoardRun at `path`, atomically."""
    target = Path(os.fspath(path))
    with replacing(target) as tmp:
        tmp.write_text(html_report(run, title), encoding="utf-8")
    return target
