"""merge_artifacts for joins, with Metaflow's semantics, comparing values by content hash.

Artifacts that agree across the join's inputs pass down *by reference*: the join adopts the
input's location, nothing is loaded or copied. A name whose inputs disagree is a conflict,
unless the join already set it itself or excluded it.
"""

from __future__ import annotations

from ..exceptions import (
    MergeArtifactsError,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)
from ..flowstate import is_artifact_name, state_of

# Artifacts a run gives every task, the same in each input of a join.
RUN_HIDDEN = frozenset({"_graph_info"})


def merge_artifacts(flow, inputs, include=None, exclude=None) -> None:
    state = state_of(flow)
    step = state.step if state is not None else "?"
    if inputs is None or not hasattr(inputs, "_steps"):
        raise MergeArtifactsError(
            f"Step {step!r}: merge_artifacts(inputs) can only be called in a join step, with "
            f"the join's `inputs` argument.", step=step)
    if include and exclude:
        raise MergeArtifactsError(
            f"Step {step!r}: merge_artifacts takes include= or exclude=, not both.", step=step)
    params = set(state.params)
    views = [state_of(inp).view for inp in inputs]
    # The run's hidden artifacts (`_graph_info`), the same in every input, are not merged (nor
    # named in its messages); a user's own `_x` is, as in Metaflow.
    available = set().union(*views) - params - RUN_HIDDEN if views else set()
    if include:
        missing = sorted(set(include) - available)
        if missing:
            raise MissingInMergeArtifactsException(
                f"Step {step!r}: merge_artifacts(include={missing}) names artifacts that no "
                f"input has. The inputs have: {sorted(available)}.", missing, step=step)
        wanted = set(include)
    else:
        wanted = available - set(exclude or ())
    already = {k for k in flow.__dict__ if is_artifact_name(k)}
    merged, conflicts = {}, []
    for name in sorted(wanted - already):
        locs = [v[name] for v in views if name in v]
        if len({loc.sha for loc in locs}) > 1:
            conflicts.append(name)
        else:
            merged[name] = locs[0]
    if conflicts:
        raise UnhandledInMergeArtifactsException(
            f"Step {step!r} cannot merge these artifacts, because their values differ between "
            f"the inputs: {', '.join(conflicts)}. Set them yourself in the join before calling "
            f"merge_artifacts (e.g. self.{conflicts[0]} = inputs[0].{conflicts[0]}), or pass "
            f"exclude={conflicts!r}.", conflicts, step=step)
    state.view.update(merged)
    state.adopted.update(merged)
