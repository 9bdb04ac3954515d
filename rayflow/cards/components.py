"""The card components Metaflow users use, with Metaflow's names and arguments: Markdown, Table,
Image, VegaChart, ProgressBar, Artifact, Error, PythonCode, ValueBox, JSONViewer, YAMLViewer,
EventsTimeline and PageComponent. Each `render()`s to a JSON-able
dict that the built-in card types turn into HTML (`rayflow.cards.html`)."""

from __future__ import annotations

import base64
import inspect
import io
import json
import re
import reprlib
import time
from typing import Any

from .base import MetaflowCardComponent

MAX_TABLE_ROWS = 1000  # rows a Table keeps from a frame unless truncate=False


class UserComponent(MetaflowCardComponent):
    """Base of the built-in components."""


class Markdown(UserComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, text=None):
        self._text = "" if text is None else str(text)

    def update(self, text=None):
        self._text = "" if text is None else str(text)

    def render(self):
        return {"type": "markdown", "source": self._text, "id": self.component_id}


def _cell(value: Any):
    if isinstance(value, MetaflowCardComponent):
        return value.render()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Table(UserComponent):
    """A table from a list of rows (`data`, with `headers`), a pandas DataFrame or a pyarrow
    Table (`Table.from_dataframe`). Cells may be other components."""

    REALTIME_UPDATABLE = True

    def __init__(self, data=None, headers=None, disable_updates=False):
        if data is not None and not isinstance(data, (list, tuple)):
            tbl = Table.from_dataframe(data)
            data, headers, self._note = tbl._data, tbl._headers, tbl._note
        else:
            self._note = ""
        self._data = [list(r) if isinstance(r, (list, tuple)) else [r] for r in (data or [])]
        self._headers = list(headers or [])
        if disable_updates:
            self.REALTIME_UPDATABLE = False

    @classmethod
    def from_dataframe(cls, dataframe=None, truncate=True):
        """From a pandas DataFrame or a pyarrow Table (the first 1,000 rows unless
        `truncate=False`)."""
        if dataframe is None:
            return cls([], [])
        rows_total = len(dataframe) if hasattr(dataframe, "__len__") else None
        try:
            import pyarrow as pa

            if isinstance(dataframe, (pa.Table, pa.RecordBatch)):
                tbl = dataframe.slice(0, MAX_TABLE_ROWS) if truncate else dataframe
                headers = list(tbl.schema.names)
                cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
                data = [list(r) for r in zip(*cols)] if cols else []
                return cls._made(data, headers, rows_total, truncate)
        except ImportError:
            pass
        if hasattr(dataframe, "columns") and hasattr(dataframe, "itertuples"):
            frame = dataframe.head(MAX_TABLE_ROWS) if truncate else dataframe
            headers = [str(c) for c in frame.columns]
            index = [str(i) for i in frame.index]
            named = not all(i == str(n) for n, i in enumerate(index))
            data = [([index[n]] if named else []) + list(r)
                    for n, r in enumerate(frame.itertuples(index=False, name=None))]
            return cls._made(data, ([""] if named else []) + headers, rows_total, truncate)
        raise TypeError(f"Table.from_dataframe takes a pandas DataFrame or a pyarrow Table, "
                        f"not {type(dataframe).__name__}")

    @classmethod
    def _made(cls, data, headers, total, truncate):
        t = cls(data, headers)
        if truncate and total is not None and total > MAX_TABLE_ROWS:
            t._note = f"Showing the first {MAX_TABLE_ROWS:,} of {total:,} rows."
        return t

    def update(self, data=None, headers=None):
        if data is not None:
            self._data = [list(r) for r in data]
        if headers is not None:
            self._headers = list(headers)

    def render(self):
        return {"type": "table", "headers": [str(h) for h in self._headers],
                "data": [[_cell(v) for v in row] for row in self._data],
                "truncated": self._note, "id": self.component_id}


def _png_data_uri(raw: bytes) -> str:
    kind = "png"
    if raw[:3] == b"\xff\xd8\xff":
        kind = "jpeg"
    elif raw[:4] == b"GIF8":
        kind = "gif"
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        kind = "webp"
    elif raw.lstrip()[:4] in (b"<svg", b"<?xm"):
        kind = "svg+xml"
    return f"data:image/{kind};base64,{base64.b64encode(raw).decode()}"


class Image(UserComponent):
    """An image from bytes (PNG, JPEG, GIF, WebP or SVG), a data URI, a PIL image
    (`Image.from_pil_image`) or a matplotlib figure (`Image.from_matplotlib`)."""

    REALTIME_UPDATABLE = True

    def __init__(self, src=None, label=None, disable_updates=True):
        self._label = label
        self._src, self._error = self._source(src)
        if disable_updates:
            self.REALTIME_UPDATABLE = False

    @staticmethod
    def _source(src):
        if src is None:
            return None, "No image given"
        if isinstance(src, str) and src.startswith("data:image/"):
            return src, None
        if isinstance(src, (bytes, bytearray, memoryview)):
            return _png_data_uri(bytes(src)), None
        if hasattr(src, "savefig") or hasattr(src, "figure"):
            return Image._from_figure(src), None
        if hasattr(src, "save") and hasattr(src, "mode"):
            return Image._from_pil(src), None
        return None, f"Image takes bytes, a PIL image or a matplotlib figure, not " \
                     f"{type(src).__name__}"

    @staticmethod
    def _from_pil(img) -> str:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return _png_data_uri(buf.getvalue())

    @staticmethod
    def _from_figure(plot) -> str:
        fig = plot if hasattr(plot, "savefig") else getattr(plot, "figure", None)
        if fig is None or not hasattr(fig, "savefig"):
            fig = plot.get_figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return _png_data_uri(buf.getvalue())

    @classmethod
    def from_pil_image(cls, pilimage, label=None, disable_updates=False):
        return cls(cls._from_pil(pilimage), label=label, disable_updates=disable_updates)

    @classmethod
    def from_matplotlib(cls, plot, label=None, disable_updates=False):
        return cls(cls._from_figure(plot), label=label, disable_updates=disable_updates)

    def update(self, image, label=None):
        self._src, self._error = self._source(image)
        if label is not None:
            self._label = label

    def render(self):
        return {"type": "image", "src": self._src, "label": self._label,
                "error": self._error, "id": self.component_id}


class VegaChart(UserComponent):
    """A Vega-Lite chart from its spec (a dict), or from an Altair chart. Drawn as SVG by
    vl-convert when the card is rendered (`rayflow.cards.charts`): nothing is fetched."""

    REALTIME_UPDATABLE = True

    def __init__(self, spec: dict, show_controls=False):
        self._spec = self._as_spec(spec)
        self._show_controls = show_controls

    @staticmethod
    def _as_spec(spec):
        from .charts import spec_of

        return spec_of(spec)

    @classmethod
    def from_altair_chart(cls, altair_chart):
        return cls(altair_chart.to_dict())

    def update(self, spec=None):
        if spec is not None:
            self._spec = self._as_spec(spec)

    def render(self):
        return {"type": "vegaChart", "spec": self._spec, "id": self.component_id}


class ProgressBar(UserComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, max=100, label=None, value=0, unit=None, metadata=None):
        self._max, self._label, self._value = max, label, value
        self._unit, self._metadata = unit, metadata

    def update(self, new_value, metadata=None):
        self._value = new_value
        if metadata is not None:
            self._metadata = metadata

    def render(self):
        return {"type": "progressBar", "max": self._max, "value": self._value,
                "label": self._label, "unit": self._unit, "details": self._metadata,
                "id": self.component_id}


_REPR = reprlib.Repr()
_REPR.maxstring = 2000
_REPR.maxother = 2000
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 60


class Artifact(UserComponent):
    """Any Python value, shown as its (shortened, unless compressed=False) repr."""

    REALTIME_UPDATABLE = True

    def __init__(self, artifact, name=None, compressed=True):
        self._artifact, self._name, self._compressed = artifact, name, compressed

    def update(self, artifact):
        self._artifact = artifact

    def render(self):
        try:
            text = _REPR.repr(self._artifact) if self._compressed else repr(self._artifact)
        except Exception as exc:  # noqa: BLE001 - a value whose repr fails
            text = f"<{type(self._artifact).__name__}: repr failed: {exc}>"
        return {"type": "artifact", "name": self._name, "data": text, "id": self.component_id}


class Error(UserComponent):
    def __init__(self, exception, title=None):
        self._exception, self._title = exception, title

    def render(self):
        import traceback

        exc = self._exception
        if isinstance(exc, BaseException):
            msg = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            msg = str(exc)
        return {"type": "error", "title": self._title or "Error", "message": msg}


class PythonCode(UserComponent):
    def __init__(self, code_func=None, code_string=None):
        if code_func is not None:
            self._code = inspect.getsource(code_func)
        else:
            self._code = code_string or ""

    def render(self):
        return {"type": "pythonCode", "data": self._code}


class StubComponent(UserComponent):
    """What `current.card.components["x"]` holds until a component with that id is added."""

    def __init__(self, component_id):
        self._non_existing_comp_id = component_id

    def update(self, *args, **kwargs):
        pass

    def render(self):
        return None


class WarningComponent(UserComponent):
    def __init__(self, message):
        self._message = message

    def render(self):
        return {"type": "warning", "message": self._message}


_CSS_CLASS = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")


def _text_arg(kind: str, value, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{kind} must be {limit} characters or less, got {len(value)} "
                         "characters")
    if not value.strip():
        raise ValueError(f"{kind} cannot be empty or whitespace only")


class ValueBox(UserComponent):
    """One headline number (or short text), with a title, a subtitle, a change indicator
    ("Up 15% from last month") and a theme: 'default', 'success', 'warning', 'danger',
    'bg-gradient-indigo-purple', or a CSS class name of the card's own."""

    type = "valueBox"
    REALTIME_UPDATABLE = True
    VALID_THEMES = {"default", "success", "warning", "danger", "bg-gradient-indigo-purple"}

    def __init__(self, title=None, value="", subtitle=None, theme=None, change_indicator=None):
        self._title = self._subtitle = self._theme = self._change = None
        self._value = value
        self._check_value(value)
        self.update(title=title, subtitle=subtitle, theme=theme, change_indicator=change_indicator)

    def update(self, title=None, value=None, subtitle=None, theme=None, change_indicator=None):
        _text_arg("Title", title, 200)
        _text_arg("Subtitle", subtitle, 300)
        _text_arg("Change indicator", change_indicator, 200)
        _text_arg("Theme", theme, 100)
        if theme is not None and theme not in self.VALID_THEMES and not _CSS_CLASS.match(theme):
            raise ValueError(f"Theme must be a valid CSS class name, got '{theme}'")
        if value is not None:
            self._check_value(value)
            self._value = value
        for attr, new in (("_title", title), ("_subtitle", subtitle), ("_theme", theme),
                          ("_change", change_indicator)):
            if new is not None:
                setattr(self, attr, new)

    @staticmethod
    def _check_value(value) -> None:
        if value is None:
            raise ValueError("Value is required and cannot be None")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(f"Value must be str, int, or float, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > 100:
            raise ValueError(f"String value must be 100 characters or less, got {len(value)} "
                             "characters")
        if not isinstance(value, str) and not -1e15 <= value <= 1e15:
            raise ValueError(f"Numeric value must be between -1e15 and 1e15, got {value}")

    def render(self):
        data = {"type": self.type, "id": self.component_id, "value": self._value}
        for key, value in (("title", self._title), ("subtitle", self._subtitle),
                           ("theme", self._theme), ("change_indicator", self._change)):
            if value is not None:
                data[key] = value
        return data


class _DataViewer(UserComponent):
    REALTIME_UPDATABLE = True
    kind = ""

    def __init__(self, data, collapsible=True, max_height=None, show_copy_button=True,
                 title=None):
        self._data, self._collapsible, self._max_height = data, collapsible, max_height
        self._show_copy_button, self._title = show_copy_button, title

    def update(self, data):
        self._data = data

    def _text(self) -> str:
        raise NotImplementedError

    def render(self):
        data = {"type": self.type, "id": self.component_id, f"{self.kind}_string": self._text(),
                "collapsible": self._collapsible, "show_copy_button": self._show_copy_button,
                "title": self._title or self.kind.upper()}
        if self._max_height:
            data["max_height"] = self._max_height
        return data


def _parsed_json(text: str):
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return False, text


class JSONViewer(_DataViewer):
    """A value shown as indented JSON (a str that is JSON is re-indented)."""

    type = "jsonViewer"
    kind = "json"

    def _text(self) -> str:
        value = _parsed_json(self._data)[1] if isinstance(self._data, str) else self._data
        try:
            return json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except Exception as exc:  # noqa: BLE001 - e.g. a circular structure
            return json.dumps({"error": f"Could not serialize data: {exc}"}, indent=2)


class YAMLViewer(_DataViewer):
    """A value shown as YAML (a str that is JSON is converted; other text is shown as is)."""

    type = "yamlViewer"
    kind = "yaml"

    def _text(self) -> str:
        import yaml

        value = self._data
        if isinstance(value, str):
            was_json, value = _parsed_json(value)
            if not was_json:
                return value
        try:
            return yaml.safe_dump(value, default_flow_style=False, indent=2, sort_keys=False)
        except Exception as exc:  # noqa: BLE001 - a value YAML cannot represent
            return (f"# Error converting to YAML: {exc}\n"
                    f"{json.dumps(value, indent=2, default=str)}")


class EventsTimeline(UserComponent):
    """A live list of events, newest first: each `update(event_data, ...)` adds one (a dict
    of simple values, with optional component `payloads`, a `style_theme` and a `priority`).
    Keeps the last `max_events`; counts them all."""

    type = "eventsTimeline"
    REALTIME_UPDATABLE = True
    VALID_THEMES = {"default", "success", "warning", "error", "info", "primary", "secondary",
                    "tool_call", "ai_response"}
    PAYLOAD_TYPES = ("ValueBox", "Image", "Markdown", "Artifact", "PythonCode", "JSONViewer",
                     "YAMLViewer")

    def __init__(self, title=None, max_events=100):
        self._title, self._max_events = title, max_events
        self._events: list[dict] = []
        self._total = 0
        self._first = self._last = None
        self._finished = False

    def update(self, event_data, style_theme=None, priority=None, payloads=None, finished=None):
        if style_theme is not None and style_theme not in self.VALID_THEMES and \
                not _CSS_CLASS.match(style_theme):
            raise ValueError(f"Invalid style_theme '{style_theme}'. Must be a valid CSS class "
                             "name.")
        allowed = (ValueBox, Image, Markdown, Artifact, PythonCode, JSONViewer, YAMLViewer)
        for key, payload in (payloads or {}).items():
            if not isinstance(payload, allowed):
                raise TypeError(f"Payload '{key}' must be one of: "
                                f"{', '.join(self.PAYLOAD_TYPES)}. Got {type(payload).__name__}")
        now = time.time()
        event_data.setdefault("timestamp", now)
        event = {"metadata": event_data, "payloads": dict(payloads or {}),
                 "event_id": f"event_{self._total}", "received_at": now}
        if style_theme is not None:
            event["style_theme"] = style_theme
        if priority is not None:
            event["priority"] = priority
        self._total += 1
        self._last = now
        self._first = self._first if self._first is not None else now
        if finished is not None:
            self._finished = finished
        self._events.insert(0, event)
        del self._events[self._max_events:]

    def get_stats(self) -> dict:
        stats = {"total_events": self._total, "displayed_events": len(self._events),
                 "last_update": self._last, "first_event": self._first,
                 "finished": self._finished}
        if self._first and self._total > 1 and self._last - self._first > 0:
            runtime = self._last - self._first
            stats["events_per_minute"] = round(self._total / runtime * 60, 1)
            stats["total_runtime_seconds"] = round(runtime, 1)
        return stats

    def render(self):
        events = [{**e, "payloads": {k: p.render() for k, p in e["payloads"].items()}}
                  for e in self._events]
        data = {"type": self.type, "id": self.component_id, "events": events,
                "config": {"show_stats": True, "show_relative_time": True,
                           "max_events": self._max_events},
                "stats": self.get_stats()}
        if self._title is not None:
            data["title"] = self._title
        return data


class PageComponent(MetaflowCardComponent):
    """A titled page of other components (Metaflow's `metaflow.cards.PageComponent`)."""

    type = "page"

    def __init__(self, title=None, subtitle=None, contents=()):
        self._title, self._subtitle, self._contents = title, subtitle, list(contents)

    def render(self):
        return {"type": self.type, "title": self._title, "subtitle": self._subtitle,
                "contents": [c.render() if isinstance(c, MetaflowCardComponent) else c
                             for c in self._contents]}
