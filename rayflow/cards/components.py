"""The card components Metaflow users use, with Metaflow's names and arguments: Markdown, Table,
Image, VegaChart, ProgressBar, Artifact, Error and PythonCode. Each `render()`s to a JSON-able
dict that the built-in card types turn into HTML (`rayflow.cards.html`)."""

from __future__ import annotations

import base64
import inspect
import io
import reprlib
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
    rayflow itself (`rayflow.cards.vega`): nothing is fetched."""

    REALTIME_UPDATABLE = True

    def __init__(self, spec: dict, show_controls=False):
        self._spec = self._as_spec(spec)
        self._show_controls = show_controls

    @staticmethod
    def _as_spec(spec):
        if hasattr(spec, "to_dict"):
            return spec.to_dict()
        if not isinstance(spec, dict):
            raise TypeError(f"VegaChart takes a Vega-Lite spec (a dict), not "
                            f"{type(spec).__name__}")
        return spec

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
