"""The built-in card types, with Metaflow's names: `default` (the task: what it was, its
artifacts, and what the step appended), `blank` (only what the step appended), `taskspec_card`
(the task's pathspec) and `error` (what a failed render left)."""

from __future__ import annotations

from .base import MetaflowCard
from .html import component_html, esc, page

MAX_ARTIFACT_BYTES = 1 << 20  # larger artifacts are listed, not loaded, by the default card


def _components_html(components) -> str:
    return "".join(component_html(c) for c in components)


def _task_table(task) -> str:
    rows = [("Task", task.pathspec)]
    for label, attr in (("Attempt", "current_attempt"), ("Started", "created_at"),
                        ("Finished", "finished_at")):
        try:
            value = getattr(task, attr)
        except Exception:  # noqa: BLE001 - a field this task view lacks
            continue
        if value is not None:
            rows.append((label, value))
    try:
        if task.created_at and task.finished_at:
            took = (task.finished_at - task.created_at).total_seconds()
            rows.append(("Duration", f"{took:.3f} s"))
        rows.append(("Status", "successful" if task.successful else
                     ("failed" if task._ended() else "running")))
    except Exception:  # noqa: BLE001 - as above
        pass
    return "<table class=\"kv\">" + "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


def _artifacts_table(task) -> str:
    from .components import Artifact

    rows = []
    try:
        arts = list(task.artifacts)
    except Exception as exc:  # noqa: BLE001 - the card still shows the rest
        return f"<div class=\"error\">Artifacts could not be read: {esc(exc)}</div>"
    for art in sorted(arts, key=lambda a: a.id):
        if art.id.startswith("_"):
            continue
        size = getattr(art, "size", 0) or 0
        if size <= MAX_ARTIFACT_BYTES:
            try:
                shown = Artifact(art.data).render()["data"]
            except Exception as exc:  # noqa: BLE001 - e.g. a class the reader lacks
                shown = f"<not loaded: {type(exc).__name__}: {exc}>"
        else:
            shown = f"<{size:,} bytes, not loaded>"
        rows.append(f"<tr><td><code>{esc(art.id)}</code></td><td>{esc(getattr(art, 'type', ''))}"
                    f"</td><td class=\"num\">{size:,}</td><td><pre>{esc(shown)}</pre></td></tr>")
    if not rows:
        return "<p class=\"sub\">No artifacts.</p>"
    return ("<table><thead><tr><th>Name</th><th>Type</th><th class=\"num\">Bytes</th>"
            "<th>Value</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


class DefaultCard(MetaflowCard):
    type = "default"
    ALLOW_USER_COMPONENTS = True
    RUNTIME_UPDATABLE = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ONCHANGE

    def render(self, task, runtime: bool = False) -> str:
        body = [f"<h1>{esc(task.pathspec)}</h1>",
                "<div class=\"sub\">rayflow task card</div>", _task_table(task)]
        if self._components:
            body += ["<h2>From the step</h2>", _components_html(self._components)]
        if not runtime:
            body += ["<h2>Artifacts</h2>", _artifacts_table(task)]
        return page(task.pathspec, "".join(body))

    def render_runtime(self, task, data) -> str:
        return self.render(task, runtime=True)


class BlankCard(MetaflowCard):
    type = "blank"
    ALLOW_USER_COMPONENTS = True
    RUNTIME_UPDATABLE = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ONCHANGE

    def render(self, task) -> str:
        title = self._options.get("title")
        head = f"<h1>{esc(title)}</h1>" if title else ""
        return page(title or task.pathspec, head + _components_html(self._components))

    def render_runtime(self, task, data) -> str:
        return self.render(task)


class TaskSpecCard(MetaflowCard):
    type = "taskspec_card"

    def render(self, task) -> str:
        return task.pathspec


class ErrorCard(MetaflowCard):
    """What is saved in place of a card whose render failed (with `save_errors=True`)."""

    type = "error"

    def __init__(self, options=None, components=None, graph=None, flow=None, **kwargs):
        super().__init__(options, components, graph, flow, **kwargs)
        self.message = self._options.get("message", "")
        self.failed_type = self._options.get("card_type", "")

    def render(self, task) -> str:
        return page(f"{task.pathspec}: card failed",
                    f"<h1>{esc(task.pathspec)}</h1><div class=\"error\"><b>The "
                    f"{esc(self.failed_type)} card could not be rendered.</b><pre>"
                    f"{esc(self.message)}</pre></div>")
