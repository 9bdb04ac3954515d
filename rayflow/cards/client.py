"""Reading cards back: `get_cards(task)` as `metaflow.cards.get_cards` does."""

from __future__ import annotations

from ..exceptions import MetaflowException
from .store import card_path, list_cards, read_card, read_card_data


class CardNotPresentException(MetaflowException):
    headline = "Card not found"


class Card:
    """One card of a task: `.type`, `.id`, `.hash`, `.path`, `get()` (its HTML) and
    `get_data()` (what a live card last sent). In a notebook it shows itself."""

    def __init__(self, ds, run_id, step, task_id, meta, from_resumed=False,
                 origin_pathspec=None):
        self._ds, self._where, self._meta = ds, (run_id, step, task_id), meta
        self.type = meta.type
        self.id = meta.id
        self.hash = meta.hash
        self.from_resumed = from_resumed
        self.origin_pathspec = origin_pathspec
        self._html = None

    @property
    def path(self) -> str:
        return card_path(self._ds, *self._where, self._meta)

    @property
    def url(self) -> str:
        return f"{self._ds.url.rstrip('/')}/{self.path}"

    @property
    def created_on(self):
        from datetime import datetime

        return datetime.fromtimestamp(self._meta.created_at)

    @property
    def is_runtime(self) -> bool:
        return self._meta.runtime

    def get(self) -> str:
        if self._html is None or self._meta.runtime:
            self._html = read_card(self._ds, *self._where, self._meta)
        return self._html

    def get_data(self):
        return read_card_data(self._ds, *self._where, self._meta)

    def view(self) -> None:
        from IPython.display import HTML, display  # noqa: PLC0415 - notebooks only

        display(HTML(self.get()))

    def _repr_html_(self) -> str:
        import html

        return (f"<iframe srcdoc=\"{html.escape(self.get(), quote=True)}\" "
                f"style=\"width:100%;height:600px;border:none\"></iframe>")

    def __repr__(self) -> str:
        return f"<Card type={self.type!r} id={self.id!r} hash={self.hash[:12]}>"


class CardContainer:
    """The cards of one task, a list with a notebook view."""

    def __init__(self, cards: list[Card]):
        self._cards = cards

    def __len__(self):
        return len(self._cards)

    def __iter__(self):
        return iter(self._cards)

    def __getitem__(self, i):
        return self._cards[i]

    def _repr_html_(self) -> str:
        return "".join(c._repr_html_() for c in self._cards)

    def __repr__(self) -> str:
        return f"CardContainer({self._cards!r})"


def _as_task(task):
    from ..client import Task

    if isinstance(task, str):
        # As Metaflow's get_cards does for a pathspec: in the global namespace.
        return Task(task, _namespace_check=False)
    return task


def get_cards(task, id=None, type=None, follow_resumed=True) -> CardContainer:
    """The cards of `task` (a client Task or its pathspec), optionally only those with this
    `id` or `type`. For a task that resume cloned, the cards of the task it was cloned from
    (unless follow_resumed=False). Raises CardNotPresentException when there is none."""
    task = _as_task(task)
    ds = task._store
    flow, run_id, step, task_id = task.pathspec.split("/")
    from_resumed, origin = False, None
    if follow_resumed and task.origin_pathspec:
        origin = task.origin_pathspec
        _, run_id, step, task_id = origin.split("/")
        from_resumed = True
    metas = list_cards(ds, run_id, step, task_id)
    cards = [Card(ds, run_id, step, task_id, m, from_resumed, origin) for m in metas
             if (type is None or m.type == type) and (id is None or m.id == id)]
    if not cards:
        what = " and ".join(f"{k} {v!r}" for k, v in (("type", type), ("id", id)) if v)
        where = f" (cards of {origin}, which resume cloned it from)" if from_resumed else ""
        raise CardNotPresentException(
            f"Task {task.pathspec} has no card{' with ' + what if what else ''}{where}. List "
            f"its cards with `rayflow card list {task.pathspec}`.")
    return CardContainer(cards)
