"""`current.card`: what a step uses to add components to its cards (Metaflow's
CardComponentCollector, with its rules).

- `current.card.append(c)` / `extend([...])` go to the step's *default editable* card: the one
  editable card (a type with ALLOW_USER_COMPONENTS) if there is one; else the one editable card
  without an `id`; a card with `customize=True` comes first. When no single card qualifies, the
  call warns and changes nothing; it never fails the step.
- `current.card["myid"]` is the card with `@card(id="myid")`, editable or not.
- `current.card.get(type="...")` lists the component lists of the cards of that type.
- `current.card.components["cid"]` is a component added with `append(c, id="cid")`;
  `current.card.refresh(data)` re-renders live cards while the task runs.
A warning goes to the task's stderr, and into every card too, unless the step runs with
`METAFLOW_CARD_NO_WARNING` (or `RAYFLOW_CARD_NO_WARNING`) set, as in Metaflow.
"""

from __future__ import annotations

import sys
import time

from .. import settings
from .base import MetaflowCardComponent, card_class, new_component_id
from .components import StubComponent, WarningComponent


def _no_warnings() -> bool:
    return settings.CARD_NO_WARNING.get()


def _warn(message: str) -> None:
    print(f"[@card WARNING] {message}", file=sys.stderr)


class ComponentStore:
    """The components of one card, in order, each with an id."""

    def __init__(self, card_type=None, user_set_id=None, components=None):
        self._card_type, self._user_set_id = card_type, user_set_id
        self._map: dict[str, MetaflowCardComponent] = {}
        self.layout_last_changed_on = time.time()
        for c in list(components or []):
            self._store(c)

    def _store(self, component, component_id=None):
        if not isinstance(component, MetaflowCardComponent):
            _warn(f"Component ({component}) is not a valid MetaflowCardComponent. It will not "
                  "be stored.")
            return
        if component_id is not None:
            component.component_id = component_id
        elif component.component_id is None:
            component.component_id = new_component_id(component)
        self._map[component.component_id] = component
        self.layout_last_changed_on = time.time()

    def append(self, component, id=None):
        self._store(component, id)

    def extend(self, components):
        for c in components:
            self._store(c)

    def clear(self):
        self._map.clear()
        self.layout_last_changed_on = time.time()

    def __getitem__(self, key):
        if key not in self._map:
            self._store(StubComponent(key), key)
        return self._map[key]

    def __setitem__(self, key, value):
        if key in self._map and not isinstance(self._map[key], StubComponent):
            from ..exceptions import MetaflowException

            raise MetaflowException(
                f"Component {key!r} of the {self._card_type} card is already set and cannot "
                f"be replaced. Set the whole card instead: current.card[ID] = [components].")
        self._store(value, key)

    def __delitem__(self, key):
        if key not in self._map:
            raise KeyError(f"The card has no component {key!r}")
        del self._map[key]
        self.layout_last_changed_on = time.time()

    def __contains__(self, key):
        return key in self._map

    def __iter__(self):
        return iter(list(self._map.values()))

    def __len__(self):
        return len(self._map)

    def keys(self):
        return list(self._map)

    def values(self):
        return list(self._map.values())

    def realtime(self):
        return [c for c in self._map.values() if c.REALTIME_UPDATABLE]


class CardManager:
    """One @card of the running step: its components and its live refreshes."""

    def __init__(self, index: int, attrs: dict, renderer=None, components=None):
        self.index = index
        self.attrs = attrs
        self.type = attrs.get("type") or "default"
        self.card_id = attrs.get("id")
        self.options = dict(attrs.get("options") or {})
        self._renderer = renderer
        self._components = ComponentStore(self.type, self.card_id, components)
        self.user_data = None
        self._last_refresh = 0.0
        self.render_seq = 0

    def append(self, component, id=None):
        self._components.append(component, id=id)

    def extend(self, components):
        self._components.extend(components)

    def clear(self):
        self._components.clear()

    @property
    def components(self) -> ComponentStore:
        return self._components

    def __iter__(self):
        return iter(self._components)

    def __len__(self):
        return len(self._components)

    def refresh(self, data=None, force=False):
        """Save the card as it is now, for someone watching the task (at most once every
        `refresh_interval` seconds, 5 unless the @card says otherwise)."""
        self.user_data = data
        now = time.time()
        interval = float(self.attrs.get("refresh_interval", 5) or 0)
        if not force and now - self._last_refresh < interval:
            return
        self._last_refresh = now
        self.render_seq += 1
        if self._renderer is not None:
            self._renderer(self)

    def data(self, final: bool = False) -> dict:
        from .render import render_component

        comps = {}
        for c in self._components.realtime():
            rendered = render_component(c)
            if rendered is not None:
                comps[c.component_id] = rendered
        return {"user": self.user_data if self.user_data is not None else {},
                "components": comps, "render_seq": "final" if final else self.render_seq,
                "component_update_ts": self._components.layout_last_changed_on}


class CardComponentCollector:
    def __init__(self, renderer=None):
        self._cards: list[CardManager] = []
        self._by_id: dict[str, CardManager] = {}
        self._default: CardManager | None = None
        self._renderer = renderer
        self._warned: set = set()

    # ---- set up by the @card decorators of the step
    def _add_card(self, attrs: dict) -> CardManager:
        manager = CardManager(len(self._cards), attrs, self._renderer)
        self._cards.append(manager)
        return manager

    def _finalize(self) -> None:
        ids = [c.card_id for c in self._cards if c.card_id is not None]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        self._by_id = {c.card_id: c for c in self._cards
                       if c.card_id is not None and c.card_id not in dupes}
        if dupes:
            self._warning(f"Multiple @card decorators have the same id: {', '.join(dupes)}. "
                          f"current.card[{dupes[0]!r}] will not work.")
        editable = [c for c in self._cards if getattr(card_class(c.type), "ALLOW_USER_COMPONENTS",
                                                     False)]
        if len(editable) == 1:
            self._default = editable[0]
        elif len(editable) > 1:
            no_id = [c for c in editable if c.card_id is None]
            if len(no_id) == 1:
                self._default = no_id[0]
        custom = [c for c in editable if c.attrs.get("customize")]
        if len(custom) > 1:
            self._warning("Multiple @card decorators have customize=True; only one per step "
                          "may. current.card.append ignores all of them.")
        elif len(custom) == 1:
            self._default = custom[0]

    # ---- the user's side
    def _warning(self, message: str, once_key=None) -> None:
        if once_key is not None:
            if once_key in self._warned:
                return
            self._warned.add(once_key)
        _warn(message)
        if _no_warnings():
            return
        for c in self._cards:
            if not c.attrs.get("suppress_warnings"):
                c.components.append(WarningComponent(message))

    def _no_default(self, verb: str) -> None:
        if not self._cards:
            self._warning(f"current.card.{verb} has no card to go to: the step has no @card "
                          "decorator (add @card, or run with --with card).", once_key=verb)
        elif not any(getattr(card_class(c.type), "ALLOW_USER_COMPONENTS", False)
                     for c in self._cards):
            kinds = ", ".join(sorted({c.type for c in self._cards}))
            self._warning(f"No card of this step is an editable card ({kinds}): "
                          f"current.card.{verb} changes nothing. Use an editable card "
                          "(default or blank, or one with ALLOW_USER_COMPONENTS), or reach a "
                          "card by its id: current.card['<id>'].", once_key=verb)
        else:
            self._warning(f"current.card.{verb} cannot choose between this step's editable "
                          "cards. Give one @card customize=True, or use "
                          "current.card['<id>'].", once_key=verb)

    def append(self, component, id=None):
        if self._default is None:
            self._no_default("append")
            return
        self._default.append(component, id=id)

    def extend(self, components):
        if self._default is None:
            self._no_default("extend")
            return
        self._default.extend(components)

    def clear(self):
        if self._default is not None:
            self._default.clear()

    def refresh(self, *args, **kwargs):
        if self._default is not None:
            self._default.refresh(*args, **kwargs)

    @property
    def components(self):
        if self._default is None:
            self._no_default("components")
            return ComponentStore()
        return self._default.components

    def get(self, type=None):
        return [list(c.components) for c in self._cards if type is not None and c.type == type]

    def __getitem__(self, key):
        if key in self._by_id:
            return self._by_id[key]
        self._warning(f"current.card[{key!r}] is not present. Set id={key!r} in a @card of "
                      f"this step to use it; this returns a list that no card reads.",
                      once_key=("getitem", key))
        return []

    def __setitem__(self, key, value):
        if key not in self._by_id:
            self._warning(f"current.card[{key!r}] is not present. Set id={key!r} in a @card "
                          f"of this step to use it.")
            return
        if not isinstance(value, list):
            self._warning(f"current.card[{key!r}] must be set to a list of components.")
            return
        old = self._by_id[key]
        old._components = ComponentStore(old.type, key, value)

    def __iter__(self):
        if self._default is None:
            return iter([])
        return iter(self._default)

    def __len__(self):
        return len(self._default) if self._default is not None else 0

    def __repr__(self):
        return f"<current.card: {len(self._cards)} card(s)>"
