"""HTML for cards and the run report: one page shell with its style inline, Markdown (by
markdown-it-py), and the HTML of each built-in component (from the dict its `render()` returns;
Vega-Lite charts drawn to SVG by vl-convert, see vega.py).

A card opens in any browser, offline, with nothing fetched and no script needed to see it.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

STYLE = """
:root{--fg:#1d2330;--muted:#5c6478;--line:#dde1ea;--bg:#fff;--soft:#f5f7fb;--accent:#2f6fde;
--ok:#2e9d57;--bad:#d64545;--run:#e0a526;--idle:#9aa3b5}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:var(--bg);margin:0;padding:24px 32px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.sub{color:var(--muted);margin-bottom:12px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft)}
code{padding:1px 4px;border-radius:3px}pre{padding:8px 10px;border-radius:4px;overflow:auto;
white-space:pre-wrap;word-break:break-word}
.card-section{margin:10px 0 18px}.label{color:var(--muted);font-size:12px;margin-top:2px}
.error{border-left:4px solid var(--bad);background:#fdf0f0;padding:8px 12px;margin:8px 0}
.warning{border-left:4px solid var(--run);background:#fdf7e8;padding:8px 12px;margin:8px 0}
.progress{display:flex;align-items:center;gap:10px;margin:8px 0}
.progress .bar{flex:0 0 320px;height:12px;background:var(--soft);border:1px solid var(--line);
border-radius:6px;overflow:hidden}.progress .fill{height:100%;background:var(--accent)}
.kv td:first-child{color:var(--muted);white-space:nowrap}
.pill{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;color:#fff}
.st-done{background:var(--ok)}.st-failed{background:var(--bad)}.st-running{background:var(--run)}
.st-not-run{background:var(--idle)}
img{max-width:100%}svg text{font-family:inherit}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:var(--muted)}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.valuebox{display:inline-block;min-width:180px;margin:6px 10px 10px 0;padding:12px 16px;
border:1px solid var(--line);border-radius:8px;background:var(--soft);vertical-align:top}
.valuebox .vb-value{font-size:26px;font-weight:600}.valuebox .vb-title{font-weight:600}
.valuebox.success{background:#e9f6ee;border-color:var(--ok)}
.valuebox.warning{background:#fdf7e8;border-color:var(--run)}
.valuebox.danger{background:#fdf0f0;border-color:var(--bad)}
.valuebox.bg-gradient-indigo-purple{background:linear-gradient(135deg,#4f46e5,#9333ea);
color:#fff}.valuebox.bg-gradient-indigo-purple .label{color:#eee}
details.viewer>summary{cursor:pointer;font-weight:600;margin:4px 0}
.timeline{list-style:none;padding:0;margin:8px 0}.timeline>li{border-left:4px solid var(--line);
padding:4px 10px;margin:6px 0}.timeline>li.success{border-color:var(--ok)}
.timeline>li.error{border-color:var(--bad)}.timeline>li.warning{border-color:var(--run)}
.timeline>li.info,.timeline>li.primary{border-color:var(--accent)}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# Reports and cards run no script and fetch nothing but images: the page says so to the
# browser, so a value that slipped through as markup still cannot run.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
       "base-uri 'none'; form-action 'none'")


def page(title: str, body: str, extra_head: str = "") -> str:
    """A whole HTML document: `body` inside the shared style, nothing fetched, no script."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style>{extra_head}</head>"
            f"<body>{body}</body></html>\n")


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_LINK_SCHEMES = {"http", "https", "mailto"}


def safe_url(url: str, image: bool = False) -> str | None:
    """`url` (as written in a card) when it is safe to link to or show: relative, http(s),
    mailto, or for an image a data:image URL; None for javascript:, vbscript:, data:text/html
    and any other scheme. Browsers drop tabs, newlines and leading blanks from a scheme, so
    they are dropped before it is read."""
    plain = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(str(url)))
    match = _SCHEME.match(plain)
    if match is None:
        return url
    scheme = match.group(1).lower()
    if scheme in _LINK_SCHEMES or (image and plain.lower().startswith("data:image/")):
        return url
    return None


# ------------------------------------------------------------------------------- Markdown
_MD = None


def markdown(source: str) -> str:
    """Markdown to HTML by markdown-it-py (CommonMark, with pipe tables and strikethrough).
    Raw HTML in the source is shown as text, and links and images whose URL could run code
    (javascript:, vbscript:, data: other than images) are left as text, as markdown-it's
    own link check does."""
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt

        _MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    return _MD.render(str(source))


# ----------------------------------------------------------------------------- components
def component_html(rendered: Any) -> str:
    """The HTML of one rendered component: a dict from a built-in component, or anything else
    (a user component's string, say), shown as text."""
    if isinstance(rendered, dict) and "type" in rendered:
        handler = _HANDLERS.get(rendered["type"])
        if handler is not None:
            return handler(rendered)
        return f"<pre>{esc(json.dumps(rendered, indent=1, default=str))}</pre>"
    if rendered is None:
        return ""
    return f"<div class=\"card-section\">{esc(rendered)}</div>"


def _cell(value: Any) -> str:
    if isinstance(value, dict) and "type" in value:
        return component_html(value)
    return esc("" if value is None else value)


def _table(d: dict) -> str:
    headers = d.get("headers") or []
    rows = d.get("data") or []
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            num = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td class=\"num\">{_cell(value)}</td>" if num else
                         f"<td>{_cell(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = d.get("truncated")
    note = f"<div class=\"label\">{esc(more)}</div>" if more else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return (f"<div class=\"card-section\"><table>{thead}"
            f"<tbody>{''.join(body)}</tbody></table>{note}</div>")


def _image(d: dict) -> str:
    label = d.get("label")
    if not d.get("src"):
        return f"<div class=\"error\">{esc(d.get('error') or 'No image')}</div>"
    cap = f"<div class=\"label\">{esc(label)}</div>" if label else ""
    if safe_url(d["src"], image=True) is None:
        return f"<div class=\"error\">Image {esc(label or '')} not shown: its URL is not " \
               f"http(s), relative or data:image.</div>"
    return (f"<figure class=\"card-section\"><img src=\"{esc(d['src'])}\" "
            f"alt=\"{esc(label or 'image')}\">{cap}</figure>")


def _vega(d: dict) -> str:
    from .charts import render_svg

    try:
        svg = render_svg(d.get("spec") or {}, d.get("id"))
    except Exception as exc:  # noqa: BLE001 - a spec the renderer cannot draw
        return (f"<div class=\"error\">This Vega-Lite chart could not be drawn: "
                f"{esc(type(exc).__name__)}: {esc(exc)}</div>")
    return f"<div class=\"card-section vega-chart\">{svg}</div>"


def _progress(d: dict) -> str:
    top = float(d.get("max") or 100) or 1.0
    value = float(d.get("value") or 0)
    pct = max(0.0, min(100.0, 100.0 * value / top))
    unit = f" {esc(d['unit'])}" if d.get("unit") else ""
    label = f"<b>{esc(d['label'])}</b>" if d.get("label") else ""
    details = f"<span class=\"label\">{esc(d['details'])}</span>" if d.get("details") else ""
    return (f"<div class=\"progress\">{label}<div class=\"bar\"><div class=\"fill\" "
            f"style=\"width:{pct:.1f}%\"></div></div><span>{value:g} / {top:g}{unit}</span>"
            f"{details}</div>")


def _artifact(d: dict) -> str:
    name = f"<h3>{esc(d['name'])}</h3>" if d.get("name") else ""
    return f"<div class=\"card-section\">{name}<pre>{esc(d.get('data', ''))}</pre></div>"


def _error(d: dict) -> str:
    return (f"<div class=\"error\"><b>{esc(d.get('title', 'Error'))}</b>"
            f"<pre>{esc(d.get('message', ''))}</pre></div>")


def _warning(d: dict) -> str:
    return f"<div class=\"warning\"><b>@card WARNING</b> {esc(d.get('message', ''))}</div>"


def _value_box(d: dict) -> str:
    value = d.get("value", "")
    shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
    parts = [f"<div class=\"vb-title\">{esc(d['title'])}</div>" if d.get("title") else "",
             f"<div class=\"label\">{esc(d['subtitle'])}</div>" if d.get("subtitle") else "",
             f"<div class=\"vb-value\">{esc(shown)}</div>",
             f"<div class=\"label\">{esc(d['change_indicator'])}</div>"
             if d.get("change_indicator") else ""]
    theme = esc(d.get("theme") or "default")
    return f"<div class=\"valuebox {theme}\">{''.join(parts)}</div>"


def _viewer(key: str):
    def render(d: dict) -> str:
        height = f" style=\"max-height:{esc(d['max_height'])}\"" if d.get("max_height") else ""
        text = f"<pre{height}>{esc(d.get(key, ''))}</pre>"
        title = esc(d.get("title", ""))
        if d.get("collapsible", True):
            return (f"<details class=\"viewer card-section\" open><summary>{title}</summary>"
                    f"{text}</details>")
        return f"<div class=\"card-section\"><h3>{title}</h3>{text}</div>"
    return render


def _timeline(d: dict) -> str:
    import datetime

    stats = d.get("stats") or {}
    head = f"<h3>{esc(d['title'])}</h3>" if d.get("title") else ""
    summary = (f"<div class=\"label\">{stats.get('total_events', 0)} events, showing "
               f"{stats.get('displayed_events', 0)}"
               + (" (finished)" if stats.get("finished") else "") + "</div>")
    items = []
    for event in d.get("events") or []:
        meta = dict(event.get("metadata") or {})
        stamp = meta.pop("timestamp", None)
        when = (datetime.datetime.fromtimestamp(stamp).strftime("%H:%M:%S")
                if isinstance(stamp, (int, float)) else esc(stamp or ""))
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in meta.items())
        payloads = "".join(component_html(p) for p in (event.get("payloads") or {}).values())
        theme = esc(event.get("style_theme") or "default")
        priority = f" <b>{esc(event['priority'])}</b>" if event.get("priority") else ""
        items.append(f"<li class=\"{theme}\"><span class=\"label\">{when}</span>{priority}"
                     f"<table class=\"kv\">{rows}</table>{payloads}</li>")
    return (f"<div class=\"card-section\">{head}{summary}<ul class=\"timeline\">"
            f"{''.join(items)}</ul></div>")


def _page(d: dict) -> str:
    title = f"<h2>{esc(d['title'])}</h2>" if d.get("title") else ""
    sub = f"<div class=\"sub\">{esc(d['subtitle'])}</div>" if d.get("subtitle") else ""
    return (f"<section class=\"card-section\">{title}{sub}"
            + "".join(component_html(c) for c in d.get("contents") or []) + "</section>")


_HANDLERS = {
    "valueBox": _value_box,
    "jsonViewer": _viewer("json_string"),
    "yamlViewer": _viewer("yaml_string"),
    "eventsTimeline": _timeline,
    "page": _page,
    "markdown": lambda d: (f"<div class=\"card-section markdown\">"
                           f"{markdown(d.get('source', ''))}</div>"),
    "table": _table,
    "image": _image,
    "vegaChart": _vega,
    "progressBar": _progress,
    "artifact": _artifact,
    "error": _error,
    "warning": _warning,
    "text": lambda d: f"<div class=\"card-section\">{esc(d.get('text', ''))}</div>",
    "pythonCode": lambda d: (f"<pre><code class=\"language-python\">"
                             f"{esc(d.get('data', ''))}</code></pre>"),
    "html": lambda d: f"<div class=\"card-section\">{d.get('data', '')}</div>",
    "section": lambda d: (f"<section class=\"card-section\"><h2>{esc(d.get('title', ''))}</h2>"
                          + "".join(component_html(c) for c in d.get("contents", []))
                          + "</section>"),
}
