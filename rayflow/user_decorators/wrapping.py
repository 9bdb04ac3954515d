"""Running a step inside its user step decorators, inside the worker (Metaflow's order).

With wrappers w1, w2, w3 (w1 nearest the step), a task runs w3.pre_step, w2.pre_step,
w1.pre_step, the step, w1.post_step, w2.post_step, w3.post_step. A pre_step that returns a
function stops the descent: that function runs instead of the rest. One that sets `skip_step`
stops it too, and nothing runs. Each post_step sees the exception so far and returns what
becomes it: None (success), an exception, or (exception, arguments of self.next). When the
step was skipped, replaced or its exception swallowed, rayflow calls self.next itself: with
the arguments given, or with the step's usual targets.

Each task gets its own copy of each wrapper, so what a wrapper keeps on itself between
pre_step and post_step belongs to that task alone.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from ..exceptions import InvalidNextError


def run_wrapped(flow, step_name: str, call_step: Callable[[], Any], wrappers: list,
                node, inputs=None) -> None:
    stack = []
    replacement = None
    next_args: Any = None
    for original in reversed(wrappers):
        w = copy.copy(original)
        replacement = w.pre_step(step_name, flow, inputs)
        stack.append(w)
        if w.skip_step:
            next_args = w.skip_step
            break
        if replacement:
            break
    raised: BaseException | None = None
    had_raised = False
    try:
        if not next_args:
            if replacement:
                args = (flow,) if inputs is None else (flow, inputs)
                next_args = replacement(*args) or None
            else:
                call_step()
    except Exception as exc:  # noqa: BLE001 - the step's own exception, for post_step
        raised, had_raised = exc, True
    for w in reversed(stack):
        raised, next_args = _after(w, step_name, flow, raised, next_args)
    if raised is not None:
        raise raised
    if (next_args is not None and next_args is not False) or had_raised:
        _call_next(flow, node, next_args, had_raised)


def _after(w, step_name: str, flow, raised, next_args):
    try:
        r = w.post_step(step_name, flow, raised)
    except Exception as exc:  # noqa: BLE001 - post_step raised: that is the step's error
        r = exc
    if r is None:
        return None, next_args
    if isinstance(r, BaseException):
        return r, next_args
    if isinstance(r, tuple) and len(r) == 2:
        return r[0], r[1]
    if isinstance(r, tuple) and len(r) == 3:
        raise r[2]
    raise InvalidNextError(
        f"Step {step_name!r}: post_step of {type(w).__name__} returned {r!r}; it returns None, "
        "an exception, or (exception, arguments of self.next).", step=step_name)


def _call_next(flow, node, next_args, had_raised: bool) -> None:
    from ..flowstate import state_of

    targets = [getattr(flow, name) for name in node.out_funcs]
    if not targets:
        return
    state = state_of(flow)
    if state is not None:
        state.transition = None
    if isinstance(next_args, dict) and next_args:
        flow.next(*targets, **next_args)
    elif next_args is True or next_args == {} or had_raised:
        if getattr(node, "switch_cases", None):
            raise InvalidNextError(
                f"Step {node.name!r} is a switch: to skip or replace it, give self.next's "
                "arguments (e.g. skip_step = {'condition': 'var'}).", step=node.name)
        if getattr(node, "parallel_foreach", False) and node.num_parallel:
            flow.next(*targets, num_parallel=node.num_parallel)
        elif node.foreach_param:
            flow.next(*targets, foreach=node.foreach_param)
        else:
            flow.next(*targets)
    else:
        raise InvalidNextError(
            f"Step {node.name!r}: a user step decorator asked to call self.next with "
            f"{next_args!r}; give True or a dict of self.next's arguments.", step=node.name)
