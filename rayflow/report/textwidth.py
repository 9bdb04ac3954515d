"""How wide a label is drawn, so the report's SVG pictures make room for it instead of
clipping it. The widths are DejaVu Sans's advance widths (in em), the widest of the fonts the
report's style names that a Linux browser falls back on; Helvetica and Arial are narrower, so
a label measured here fits in any of them."""

from __future__ import annotations

_EM = {}
for chars, width in (
    ("iljI!'|.,:;", 0.32), ("ft", 0.40), ("r", 0.42), (" ", 0.32), ("()[]{}", 0.39),
    ("sz", 0.53), ("c", 0.55), ("kvxy", 0.60), ("J", 0.30), ("_-", 0.50), ("/\\", 0.34),
    ("abdeghnopqu", 0.64), ("0123456789", 0.64), ("=+<>~*#$%&?", 0.84), ("w", 0.82),
    ("m", 0.98), ("MW", 1.0), ("·", 0.32), ("×", 0.84), ("…", 1.0),
):
    for ch in chars:
        _EM[ch] = width
UPPER = 0.72  # most capitals
OTHER = 0.80  # anything else (a wide glyph from another script, say)
BOLD = 1.08   # bold glyphs are this much wider


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Pixels `text` takes at font size `size` (at most: never less than drawn)."""
    em = sum(_EM.get(ch, UPPER if ch.isupper() else OTHER) for ch in str(text))
    return em * size * (BOLD if bold else 1.0)
