"""The two classes a card is made of, with Metaflow's names: `MetaflowCard` (a card type, which
renders a task to HTML) and `MetaflowCardComponent` (one piece of a card the user adds from a
step with `current.card.append(...)`).

Card types are found by their `type` name. A subclass of MetaflowCard registers itself when its
module is imported, so a card class written in the flow's own file, or in any module the flow
imports, can be named in `@card(type=...)`. The built-in types, Metaflow's test cards, modules
listed in `RAYFLOW_CARD_MODULES` (comma separated) and the `rayflow.cards` entry-point group are
imported the first time a name is looked up. A module that fails to import is skipped with a
warning, so one broken card module does not stop the others (or the run).
"""

from __future__ import annotations

import importlib
import sys
import uuid

from .. import settings

_REGISTRY: dict[str, type] = {}
_LOADED = {"done": False}
BUILTIN_MODULES = ("rayflow.cards.builtin", "rayflow.plugins.cards.card_modules.basic",
                   "rayflow.plugins.cards.card_modules.test_cards")


class MetaflowCard:
    """A card type. Subclasses set `type` and write `render(task) -> str` (an HTML page, or any
    string). `task` is the finished task as a client `Task`.

    - `ALLOW_USER_COMPONENTS`: the card takes what the step appends with `current.card.append`
      (its components reach `__init__` as `components=`, each already rendered);
    - `RUNTIME_UPDATABLE`: `current.card.refresh()` re-renders it while the task runs, through
      `render_runtime(task, data)`; `refresh(task, data)` returns what a live page receives;
    - `RELOAD_POLICY`: when a live viewer reloads the card ("never", "always", "onchange").
    """

    RELOAD_POLICY_NEVER = "never"
    RELOAD_POLICY_ALWAYS = "always"
    RELOAD_POLICY_ONCHANGE = "onchange"
    RELOAD_POLICY_TOKEN = "[METAFLOW_RELOAD_TOKEN]"

    type: str | None = None
    ALLOW_USER_COMPONENTS = False
    RUNTIME_UPDATABLE = False
    RELOAD_POLICY = RELOAD_POLICY_NEVER

    def __init__(self, options=None, components=None, graph=None, flow=None, **kwargs):
        self._options = dict(options or {})
        self._components = list(components or [])
        self._graph = graph
        self._flow = flow
        self.runtime_data = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("type"), str) and cls.type:
            _REGISTRY[cls.type] = cls

    def render(self, task) -> str:
        return ""

    def render_runtime(self, task, data) -> str:
        raise NotImplementedError(f"card type {self.type!r} cannot render while the task runs")

    def refresh(self, task, data):
        return data

    def reload_content_token(self, task, data) -> str:
        if self.RELOAD_POLICY == self.RELOAD_POLICY_ALWAYS:
            return str(data.get("render_seq", "")) if isinstance(data, dict) else "always"
        if self.RELOAD_POLICY == self.RELOAD_POLICY_ONCHANGE and isinstance(data, dict):
            return f"{data.get('render_seq') == 'final'}-{data.get('component_update_ts')}"
        return "content-token"


class MetaflowCardComponent:
    """One piece of a card. `render()` returns what the card type shows: a string, or for the
    built-in components a JSON-able dict that the built-in cards turn into HTML.
    `REALTIME_UPDATABLE` components may change with `update(...)` while the task runs."""

    REALTIME_UPDATABLE = False
    _component_id = None

    @property
    def component_id(self):
        return self._component_id

    @component_id.setter
    def component_id(self, value):
        if not isinstance(value, str):
            raise TypeError("A component's id must be a string")
        self._component_id = value

    def update(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} cannot be updated")

    def render(self):
        return ""


def new_component_id(component) -> str:
    return f"{type(component).__name__.lower()}_{uuid.uuid4().hex[:12]}"


def _load_card_modules() -> None:
    if _LOADED["done"]:
        return
    _LOADED["done"] = True
    names = list(BUILTIN_MODULES)
    names += list(settings.CARD_MODULES.get())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken card module must not stop the run
            print(f"[@card WARNING] card module {name!r} could not be imported and is skipped: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="rayflow.cards"):
            try:
                ep.load()
            except Exception as exc:  # noqa: BLE001 - as above
                print(f"[@card WARNING] card entry point {ep.name!r} could not be loaded and "
                      f"is skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
    except Exception:  # noqa: BLE001 - no entry-point metadata at all
        pass


def card_class(card_type: str) -> type | None:
    """The card class registered under `card_type`, or None."""
    found = _REGISTRY.get(card_type)
    if found is None:
        _load_card_modules()
        found = _REGISTRY.get(card_type)
    return found


def card_types() -> list[str]:
    _load_card_modules()
    return sorted(_REGISTRY)
