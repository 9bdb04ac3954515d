"""`@project(name=...)`: flows of one project, on a branch (Metaflow's @project).

The branch is `user.<username>` by default, `test.<branch>` with `--branch`, `prod` with
`--production`, `prod.<branch>` with both. A run of a project flow carries the system tags
`project:<name>` and `project_branch:<branch>`, and a running step sees `current.project_name`,
`current.branch_name`, `current.project_flow_name` (`<project>.<branch>.<Flow>`),
`current.is_production` and `current.is_user_branch`. `--branch` and `--production` default to
METAFLOW_BRANCH and METAFLOW_PRODUCTION, read when the run starts (a flow file may set them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .exceptions import InvalidFlowError, ProjectOptionError

_INVALID = re.compile(r"[^a-z0-9_]")
MAX_LEN = 128
_UNSET = object()


@dataclass(frozen=True)
class ProjectDecl:
    """What the decorator says; `branch` / `production` are None when it does not say."""

    name: object
    branch: str | None = None
    production: bool | None = None


@dataclass(frozen=True)
class ProjectInfo:
    """What a run of a project flow is: the values `current` shows."""

    project_name: str
    branch_name: str
    project_flow_name: str
    is_production: bool
    is_user_branch: bool

    @property
    def sys_tags(self) -> list[str]:
        return [f"project:{self.project_name}", f"project_branch:{self.branch_name}"]

    def to_json(self) -> dict:
        return dict(self.__dict__)


def project(cls=None, *, name=None, branch=None, production=_UNSET):
    """`@project(name="fraud")` on a FlowSpec class."""
    def attach(flow_cls):
        from .decorators import FlowDecoratorRecord, record_flow_decorator

        flow_cls._rf_project = ProjectDecl(
            name, branch, None if production is _UNSET else bool(production))
        attrs = {"name": name, "branch": branch,
                 "production": False if production is _UNSET else production}
        record_flow_decorator(flow_cls, FlowDecoratorRecord("project", attrs))
        return flow_cls

    if cls is not None:
        if isinstance(cls, type):
            raise InvalidFlowError(
                f"@project on {cls.__name__} needs a name: write @project(name='some_name').")
        raise InvalidFlowError("@project takes keywords only: @project(name='some_name').")
    return attach


project._rf_flow_decorator = "project"


def _check(kind: str, value: str, where: str, error=InvalidFlowError) -> str:
    if _INVALID.search(value):
        raise error(
            f"The {kind} {value!r} of {where} may contain only lowercase letters, digits and "
            "underscores. Rename it.")
    if len(value) > MAX_LEN:
        raise error(f"The {kind} of {where} must be shorter than {MAX_LEN} "
                                  "characters.")
    return value


def _env_production() -> bool:
    raw = os.environ.get("METAFLOW_PRODUCTION", "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ProjectOptionError(f"METAFLOW_PRODUCTION={raw!r} is not a boolean. Set it to true or "
                         "false, or unset it.")


def resolve_project(flow_cls, flow_name: str, user: str, branch: str | None = None,
                    production: bool | None = None, resolve_value=None) -> ProjectInfo | None:
    """The project info of a run, or None for a flow without @project. `branch` and
    `production` are the command line's (None: not given); `resolve_value` turns a deferred
    config expression in the decorator into its value."""
    decl = getattr(flow_cls, "_rf_project", None)
    if decl is None:
        return None
    where = f"@project of flow {flow_name}"
    name = resolve_value(decl.name) if resolve_value else decl.name
    if not name or not isinstance(name, str):
        raise InvalidFlowError(f"{where} needs a name: write @project(name='some_name').")
    _check("project name", name, where)
    if branch is None:
        branch = os.environ.get("METAFLOW_BRANCH") or None
    if production is None:
        production = _env_production() or None
    if decl.branch is not None and branch is not None and branch != decl.branch:
        raise ProjectOptionError(f"Pass the branch either as --branch or in the {where}, not "
                             "both.")
    if decl.production is not None and production is not None and \
            production != decl.production:
        raise ProjectOptionError(f"Pass production either as --production or in the {where}, "
                             "not both.")
    branch = decl.branch if decl.branch is not None else branch
    is_prod = bool(decl.production if decl.production is not None else production)
    if branch:
        _check("branch name", branch, where,
               InvalidFlowError if decl.branch is not None else ProjectOptionError)
        branch_name = f"{'prod' if is_prod else 'test'}.{branch}"
    elif is_prod:
        branch_name = "prod"
    else:
        branch_name = f"user.{user}"
    return ProjectInfo(name, branch_name, f"{name}.{branch_name}.{flow_name}", is_prod,
                       not branch and not is_prod)
