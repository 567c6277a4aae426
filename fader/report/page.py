"""One self-contained HTML page that reads like a results page: the summary tables first, then
the curves as pictures, then the edit grids, and every metric last, collapsed.

Images are embedded as base64 data URIs and there is no JavaScript (the collapsed section is an
HTML `<details>`), so the file opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from fader import io
from fader.config import flatten

_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}


def read_metrics_dir(
    metrics_dir: str | os.PathLike[str], objects_only: bool = False
) -> dict[str, dict]:
    """Every `*.json` file in `metrics_dir` (not recursive), keyed by file stem, sorted by name.

    A file whose top level is not an object (a list of plot rows) comes as `{"value": content}`,
    or is left out with `objects_only`. CI's metric gate (.ci/gate.py) reads folders here too.
    """
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise FileNotFoundError(f"metrics folder not found: {metrics_dir}")
    tables = {}
    for path in sorted(p for p in metrics_dir.glob("*.json") if p.is_file()):
        try:
            content = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        if isinstance(content, dict):
            tables[path.stem] = content
        elif not objects_only:
            tables[path.stem] = {"value": content}
    return tables


def format_value(value: Any) -> str:
    """How a metric value is shown: floats to 6 significant digits, lists as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def data_uri(path: str | os.PathLike[str]) -> str:
    """The file as a `data:<mime>;base64,...` URI."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"{path}: cannot embed a {path.suffix!r} file; use one of {sorted(_MIME)}")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


@dataclass(frozen=True)
class Table:
    """A summary table: a caption, column headers, rows of cells already formatted as text."""

    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.value, table.summary td { text-align: right; font-family: monospace; }
table.summary td:first-child { text-align: left; font-family: sans-serif; }
table.summary caption { text-align: left; font-weight: bold; margin-bottom: 0.3em; }
details summary { cursor: pointer; font-size: 1.2em; margin: 1em 0; }
figure { margin: 0 0 2em 0; }
img { max-width: 100%; height: auto; }
img.grid { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.3em; }
"""


def _table(name: str, metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(key)}</td><td class="value">{html.escape(format_value(value))}'
        "</td></tr>"
        for key, value in flatten(metrics, sep="/").items()
    )
    return (
        f"<h3>{html.escape(name)}</h3>\n<table><tr><th>metric</th><th>value</th></tr>"
        f"{rows}</table>\n"
    )


def _summary(table: Table) -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header in table.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return (
        f'<table class="summary"><caption>{html.escape(table.caption)}</caption>'
        f"<tr>{head}</tr>{rows}</table>\n"
    )


def _figure(path: Path, caption: str | None, pixel_art: bool) -> str:
    attributes = f'src="{data_uri(path)}" alt="{html.escape(path.name)}"'
    if pixel_art and path.suffix.lower() != ".svg":
        with Image.open(path) as image:
            width = image.width
        # small model outputs (32-64 px cells) are enlarged with crisp pixels
        scale = max(1, min(4, 1024 // max(width, 1)))
        attributes += f' class="grid" width="{width * scale}"'
    text = html.escape(caption if caption is not None else path.name)
    return f"<figure><img {attributes}><figcaption>{text}</figcaption></figure>\n"


def write_html_report(
    path: str | os.PathLike[str],
    title: str,
    summary: Sequence[Table],
    curve_images: Sequence[str | os.PathLike[str]],
    grid_images: Sequence[str | os.PathLike[str]],
    metrics_tables: Mapping[str, Mapping[str, Any]],
    captions: Mapping[str, str] | None = None,
) -> None:
    """Write one self-contained page: `summary` tables, curve images, grid images, and last,
    collapsed, every metric of `metrics_tables` (name → a possibly nested dict of values).

    Images are embedded as base64 data URIs; there is no script and no external resource, so
    the page opens offline. `captions` maps an image's file name to the text under it (default:
    the name).
    """
    captions = captions or {}
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
    ]
    if summary:
        parts.append("<h2>Results</h2>\n")
        parts += [_summary(table) for table in summary]
    if curve_images:
        parts.append("<h2>Curves</h2>\n")
        parts += [_figure(Path(p), captions.get(Path(p).name), False) for p in curve_images]
    if grid_images:
        parts.append("<h2>Edits</h2>\n")
        parts += [_figure(Path(p), captions.get(Path(p).name), True) for p in grid_images]
    if metrics_tables:
        parts.append(f"<details>\n<summary>All metrics ({len(metrics_tables)} tables)</summary>\n")
        parts += [_table(name, table) for name, table in metrics_tables.items()]
        parts.append("</details>\n")
    parts.append("</body>\n</html>\n")
    io.write_text(path, "".join(parts))
