"""Rendering a task's cards, in the worker, once the task's record is durable (so that a card
reads the finished task through the client, as Metaflow's cards do), and live while it runs
(`current.card.refresh()`).

A card that fails or runs past its `timeout` never fails the task: with `save_errors=True`
(the default) an error card takes its place, else it is left out, and either way the task's
stderr says why.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback

from .base import card_class, card_types
from .collector import CardComponentCollector, CardManager
from .store import save_card


class CardTimeout(Exception):
    pass


def render_component(component):
    try:
        return component.render()
    except Exception as exc:  # noqa: BLE001 - one bad component must not lose the card
        return {"type": "error", "title": f"{type(component).__name__} failed to render",
                "message": "".join(traceback.format_exception_only(type(exc), exc))}


def with_timeout(seconds: float | None, fn, *args):
    """fn(*args), raising CardTimeout after `seconds` (SIGALRM on the main thread; elsewhere
    the call is left to finish in a daemon thread and its result dropped)."""
    if not seconds or seconds <= 0:
        return fn(*args)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        def on_alarm(signum, frame):
            raise CardTimeout(f"rendering took longer than its timeout of {seconds:g} s")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise CardTimeout(f"rendering took longer than its timeout of {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _make_card(manager: CardManager, graph: dict | None):
    cls = card_class(manager.type)
    if cls is None:
        raise LookupError(f"There is no card type {manager.type!r}. Known types: "
                          f"{', '.join(card_types())}. A card type is a subclass of "
                          "rayflow.cards.MetaflowCard with that `type`, in a module the flow "
                          "imports or one named in RAYFLOW_CARD_MODULES.")
    components = [render_component(c) for c in manager.components]
    return cls(options=manager.options, components=components, graph=graph)


def _html_of(value, card_type: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"the {card_type} card's render() returned {type(value).__name__}, "
                        "not a str")
    return value


class _TaskStandIn:
    """What a live card sees while its task runs, where the client cannot read the task yet."""

    def __init__(self, pathspec: str):
        self.pathspec = pathspec
        self.id = pathspec.rsplit("/", 1)[-1]
        self.finished = False
        self.successful = False


def _task(pathspec: str, datastore: str | None, live: bool):
    try:
        from ..client import Task

        return Task(pathspec, datastore=datastore, _namespace_check=False)
    except Exception:  # noqa: BLE001 - the task may not be readable yet (a live card)
        if live:
            return _TaskStandIn(pathspec)
        raise


def collector_for(card_decos, ds_getter, tctx) -> CardComponentCollector:
    """The step's `current.card`, one manager per @card in decorator order."""

    def live(manager: CardManager) -> None:
        render_live(ds_getter(), tctx, manager)

    collector = CardComponentCollector(renderer=live)
    for deco in card_decos:
        collector._add_card(dict(deco.attributes))
    collector._finalize()
    return collector


def render_live(ds, tctx, manager: CardManager) -> None:
    cls = card_class(manager.type)
    if cls is None or not getattr(cls, "RUNTIME_UPDATABLE", False):
        return
    try:
        card = _make_card(manager, None)
        data = manager.data()
        card.runtime_data = data
        task = _task(tctx.pathspec, tctx.datastore_url, live=True)
        html = with_timeout(manager.attrs.get("timeout"), card.render_runtime, task, data)
        save_card(ds, tctx.run_id, tctx.step_name, tctx.task_id, attempt=tctx.retry_count,
                  index=manager.index, card_type=manager.type, card_id=manager.card_id,
                  html=_html_of(html, manager.type),
                  data=with_timeout(manager.attrs.get("timeout"), card.refresh, task, data),
                  runtime=True)
    except Exception as exc:  # noqa: BLE001 - a live card never fails the step
        print(f"[@card WARNING] live {manager.type} card of {tctx.pathspec} not saved: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)


def render_final(ds, pathspec: str, datastore_url: str | None, attempt: int,
                 collector: CardComponentCollector, graph: dict | None = None) -> int:
    """Render and save every card of a finished task. Returns how many were saved."""
    _, run_id, step, task_id = pathspec.split("/")
    saved = 0
    task = None
    for manager in collector._cards:
        attrs = manager.attrs
        try:
            if task is None:
                task = _task(pathspec, datastore_url, live=False)
            card = _make_card(manager, graph)
            data = manager.data(final=True)
            card.runtime_data = data
            html = _html_of(with_timeout(attrs.get("timeout"), card.render, task), manager.type)
            out_data = None
            if getattr(card, "RUNTIME_UPDATABLE", False):
                out_data = with_timeout(attrs.get("timeout"), card.refresh, task, data)
        except Exception as exc:  # noqa: BLE001 - a card never fails the task
            why = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(f"[@card WARNING] the {manager.type} card of {pathspec} failed to render: "
                  f"{why}", file=sys.stderr)
            if not attrs.get("save_errors", True):
                continue
            from .builtin import ErrorCard

            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            err = ErrorCard(options={"message": stack, "card_type": manager.type})
            html = err.render(task if task is not None else _TaskStandIn(pathspec))
            out_data = None
        try:
            save_card(ds, run_id, step, task_id, attempt=attempt, index=manager.index,
                      card_type=manager.type, card_id=manager.card_id, html=html, data=out_data)
            saved += 1
        except Exception as exc:  # noqa: BLE001 - e.g. the datastore refused the write
            print(f"[@card WARNING] the {manager.type} card of {pathspec} could not be saved: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return saved
