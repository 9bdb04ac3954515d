"""Where cards live in the datastore: beside the task's records, under `cards/`.

    <flow>/<run>/<step>/<task>/cards/a<attempt>.c<index>.html        the card
    <flow>/<run>/<step>/<task>/cards/a<attempt>.c<index>.data.json   its data (live cards)
    <flow>/<run>/<step>/<task>/cards/a<attempt>.c<index>.json        what it is (type, id, hash)

`index` is the @card decorator's place on the step (0 first), so two cards of one type stay
apart. A card rendered while the task runs (`current.card.refresh()`) is saved the same way
with `.runtime` before the suffix, and the final card replaces it for readers. The small JSON
file is written last: a card is listed only once its HTML is whole.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass

CARDS_DIR = "cards"
_META = re.compile(r"^a(\d+)\.c(\d+)(\.runtime)?\.json$")


@dataclass
class CardMeta:
    type: str
    id: str | None
    hash: str
    attempt: int
    index: int
    runtime: bool
    created_at: float

    def stem(self) -> str:
        return f"a{self.attempt}.c{self.index}" + (".runtime" if self.runtime else "")


def card_dir(ds, run_id: str, step: str, task_id: str) -> str:
    return f"{ds.task_path(run_id, step, task_id)}/{CARDS_DIR}"


def save_card(ds, run_id: str, step: str, task_id: str, *, attempt: int, index: int,
              card_type: str, card_id: str | None, html: str, data=None,
              runtime: bool = False) -> CardMeta:
    raw = html.encode("utf-8", errors="replace")
    meta = CardMeta(card_type, card_id, hashlib.sha256(raw).hexdigest(), int(attempt),
                    int(index), runtime, time.time())
    base = f"{card_dir(ds, run_id, step, task_id)}/{meta.stem()}"
    ds.storage.put(f"{base}.html", raw)
    if data is not None:
        ds.storage.put(f"{base}.data.json", json.dumps(data, default=str).encode())
    ds.storage.put(f"{base}.json", json.dumps(asdict(meta)).encode())
    return meta


def list_cards(ds, run_id: str, step: str, task_id: str) -> list[CardMeta]:
    """The task's cards, in decorator order: for each decorator the final card of the latest
    attempt that has one, else its latest live card."""
    base = card_dir(ds, run_id, step, task_id)
    try:
        names = ds.storage.list(base)
    except FileNotFoundError:
        return []
    metas = [n for n in names if _META.match(n)]
    if not metas:
        return []
    raws = ds.storage.get_many([f"{base}/{n}" for n in metas])
    best: dict[int, CardMeta] = {}
    for raw in raws:
        try:
            m = CardMeta(**json.loads(raw))
        except (ValueError, TypeError):
            continue
        have = best.get(m.index)
        rank = (not m.runtime, m.attempt, m.created_at)
        if have is None or rank > (not have.runtime, have.attempt, have.created_at):
            best[m.index] = m
    return [best[i] for i in sorted(best)]


def card_path(ds, run_id: str, step: str, task_id: str, meta: CardMeta, suffix="html") -> str:
    return f"{card_dir(ds, run_id, step, task_id)}/{meta.stem()}.{suffix}"


def read_card(ds, run_id: str, step: str, task_id: str, meta: CardMeta) -> str:
    return ds.storage.get(card_path(ds, run_id, step, task_id, meta)).decode("utf-8",
                                                                            errors="replace")


def read_card_data(ds, run_id: str, step: str, task_id: str, meta: CardMeta):
    try:
        raw = ds.storage.get(card_path(ds, run_id, step, task_id, meta, "data.json"))
    except FileNotFoundError:
        return None
    return json.loads(raw)
