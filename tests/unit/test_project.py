"""@project's branch rules (Metaflow's): user, test, prod and prod.<branch> branches, the flow
name a deployment gets, and the errors for bad names or a branch given twice."""

from __future__ import annotations

import pytest

from rayflow import FlowSpec, project, step
from rayflow.exceptions import InvalidFlowError, ParameterError
from rayflow.project import resolve_project


def _flow(**attrs):
    @project(**attrs)
    class PFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    return PFlow


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("METAFLOW_BRANCH", raising=False)
    monkeypatch.delenv("METAFLOW_PRODUCTION", raising=False)


@pytest.mark.parametrize("branch, production, expected, user_branch", [
    (None, None, "user.ana", True),
    ("feat", None, "test.feat", False),
    (None, True, "prod", False),
    ("blue", True, "prod.blue", False),
])
def test_branch_names(branch, production, expected, user_branch):
    info = resolve_project(_flow(name="shop"), "PFlow", "ana", branch, production)
    assert info.branch_name == expected and info.is_user_branch is user_branch
    assert info.project_flow_name == f"shop.{expected}.PFlow"
    assert info.is_production is bool(production)
    assert info.sys_tags == ["project:shop", f"project_branch:{expected}"]


def test_the_environment_gives_the_defaults(monkeypatch):
    monkeypatch.setenv("METAFLOW_BRANCH", "from_env")
    assert resolve_project(_flow(name="shop"), "PFlow", "ana").branch_name == "test.from_env"
    monkeypatch.setenv("METAFLOW_PRODUCTION", "True")
    assert resolve_project(_flow(name="shop"), "PFlow", "ana").branch_name == "prod.from_env"


def test_the_decorator_may_fix_the_branch_but_not_also_the_command_line():
    flow = _flow(name="shop", branch="pinned")
    assert resolve_project(flow, "PFlow", "ana").branch_name == "test.pinned"
    with pytest.raises(ParameterError, match="either as --branch or in the @project"):
        resolve_project(flow, "PFlow", "ana", "other")


def test_bad_names_are_clear_errors():
    with pytest.raises(InvalidFlowError, match="lowercase letters, digits and underscores"):
        resolve_project(_flow(name="Shop-1"), "PFlow", "ana")
    with pytest.raises(InvalidFlowError, match="needs a name"):
        resolve_project(_flow(), "PFlow", "ana")
    with pytest.raises(ParameterError, match="branch name 'No.Dots'"):
        resolve_project(_flow(name="shop"), "PFlow", "ana", "No.Dots")
    with pytest.raises(InvalidFlowError, match="needs a name"):
        project(type("X", (), {}))


def test_a_flow_without_project_has_none():
    class Plain(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    assert resolve_project(Plain, "Plain", "ana") is None
