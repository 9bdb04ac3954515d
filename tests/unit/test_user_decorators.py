"""Metaflow's user decorators and mutators (rayflow/user_decorators): FlowMutator, StepMutator,
UserStepDecorator, @user_step_decorator, MutableFlow and MutableStep. Runs use the in-process
executor (no Ray); `show`, `check` and the errors go through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rayflow import (
    FlowMutator,
    FlowSpec,
    Parameter,
    Run,
    StepMutator,
    UserStepDecorator,
    environment,
    namespace,
    project,
    retry,
    step,
    user_step_decorator,
)
from rayflow.exception import MetaflowException
from rayflow.exceptions import InvalidFlowError
from rayflow.parameters import flow_parameters, resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.run_loop import RunLoop, RunOptions
from rayflow.user_decorators.common import MutatorError, find_class, parse_spec_args
from rayflow.user_decorators.mutable_flow import MutableFlow
from rayflow.user_decorators.mutable_step import MutableStep
from rayflow.user_decorators.process import mutated_class

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "tests", "flows", "mutators_flow.py")


def run_inline(path, datastore, config_values=None, with_=()):
    loaded = load_flow(path)
    values = resolve_parameters(loaded.cls, {}, config_values=config_values,
                                with_decorators=list(with_))
    opts = RunOptions(datastore_url=datastore, executor="inline", progress=False,
                      with_decorators=list(with_))
    summary = RunLoop(loaded, values, opts).run()
    assert summary.successful, summary.failures
    namespace(None)
    return Run(summary.pathspec, datastore=datastore)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=120)


def write_flow(tmp_path, body: str, name="flow.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


# -- a whole flow ------------------------------------------------------------------------------
def test_mutators_and_user_decorators_shape_the_run(tmp_path):
    run = run_inline(FLOW, str(tmp_path / "ds"))
    start = run["start"].task.data
    assert start.width == 3                                     # a parameter a mutator added
    assert (start.env_start, start.more) == ("start", "from_string")  # pre_mutate, then mutate
    assert (start.stamp, start.stamped_after) == ("cfg-label", "start")  # config-driven
    assert run["join"].task.data.values == [-1, 0, 20]          # odd splits were skipped
    assert run["swapped"].task.data.replaced_ran is True        # the step was replaced
    end = run["end"].task.data
    assert (end.env_end, end.swallowed) == ("end", "ValueError")  # exception swallowed
    assert run["end"].task["_swallowed"].data == "ValueError"   # `_name` is an artifact


def test_config_values_reach_the_mutators_and_the_decorators(tmp_path):
    run = run_inline(FLOW, str(tmp_path / "ds"),
                     config_values={"settings": json.dumps({"width": 5, "label": "other"})})
    assert run["start"].task.data.width == 5
    assert run["start"].task.data.stamp == "other"
    assert run["join"].task.data.values == [-1, -1, 0, 20, 40]


def test_mutate_sees_the_with_decorators(tmp_path):
    """`--with environment:...` is on the steps before mutate: more_env extends it."""
    run = run_inline(FLOW, str(tmp_path / "ds"), with_=['environment:vars={"W": "1"}'])
    assert run["start"].task.data.more == "from_string"


# -- the flow class itself stays as written ---------------------------------------------------
def test_the_flow_class_is_never_changed_and_each_config_gets_its_own_class():
    cls = load_flow(FLOW).cls
    a = mutated_class(cls, {"settings": {"width": 3, "label": "a"}})
    b = mutated_class(cls, {"settings": {"width": 4, "label": "b"}})
    assert a is mutated_class(cls, {"settings": {"width": 3, "label": "a"}})  # cached
    assert a is not b and a.__name__ == cls.__name__ and issubclass(a, cls)
    assert [p.name for p in flow_parameters(cls)] == []
    assert [p.default for p in flow_parameters(a)] == [3]
    assert [p.default for p in flow_parameters(b)] == [4]
    assert cls.start.decorators == [] and cls.start.wrappers == []
    assert [d.name for d in a.start.decorators] == ["environment"]
    assert a.start.decorators[0].attributes["vars"] == {"STEP_NAME": "start", "MORE":
                                                         "from_string"}


# -- decorator specs and names -----------------------------------------------------------------
def test_decorator_specs_parse_as_metaflow_does():
    assert parse_spec_args('a=1,b=x,c={"k": [1, 2]},0=first,d=2.5') == (
        ["first"], {"a": 1, "b": "x", "c": {"k": [1, 2]}, "d": 2.5})
    assert parse_spec_args("") == ([], {})
    with pytest.raises(MutatorError, match="name=value"):
        parse_spec_args("oops")


class named_once(FlowMutator):
    pass


def test_a_mutator_is_found_by_its_name_or_a_dotted_suffix():
    assert find_class(FlowMutator, "named_once") is named_once
    assert find_class(FlowMutator, f"{__name__}.named_once") is named_once
    assert find_class(FlowMutator, "no_such_mutator") is None


# -- MutableStep: adding, duplicates, removing --------------------------------------------------
class Plain(FlowSpec):
    @retry(times=1)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def _mutable_start(pre_mutate=True):
    func = Plain.start
    saved = (list(func.decorators), list(func.wrappers), list(func.config_decorators))
    return MutableStep(Plain, func, pre_mutate=pre_mutate, statically_defined=True,
                       inserted_by=["test"]), saved


@pytest.fixture
def start_step():
    ms, saved = _mutable_start()
    yield ms
    Plain.start.decorators, Plain.start.wrappers, Plain.start.config_decorators = saved


def test_add_decorator_returns_what_it_added_and_honours_duplicates(start_step):
    ms = start_step
    added = ms.add_decorator(environment, deco_kwargs={"vars": {"A": "1"}})
    assert added.name == "environment" and added.attributes["vars"] == {"A": "1"}
    assert ms.add_decorator("environment:vars={\"A\": \"2\"}") is None      # IGNORE keeps
    assert ms.add_decorator("retry:times=3", duplicates=ms.OVERRIDE).attributes["times"] == 3
    with pytest.raises(MutatorError, match="already has @retry"):
        ms.add_decorator(retry, deco_kwargs={"times": 2}, duplicates=ms.ERROR)
    specs = {name: kwargs for name, _, _, kwargs in ms.decorator_specs}
    assert specs["retry"]["times"] == 3 and specs["environment"]["vars"] == {"A": "1"}
    assert ms.remove_decorator("environment") is True
    assert ms.remove_decorator("environment") is False
    assert not ms.has_decorator("environment") and ms.has_decorator("retry")


def test_an_unknown_decorator_name_is_one_error_naming_it(start_step):
    with pytest.raises(MutatorError, match="'NoSuchThing'.*Known: .*environment"):
        start_step.add_decorator("NoSuchThing:x=1")
    with pytest.raises(InvalidFlowError, match="does not take 'nope'"):
        start_step.add_decorator(environment, deco_kwargs={"nope": 1})


class counted(StepMutator):
    def mutate(self, mutable_step):
        pass


def test_step_mutators_are_added_and_removed_only_in_pre_mutate(start_step):
    late, _ = _mutable_start(pre_mutate=False)
    with pytest.raises(MetaflowException, match="only allowed in the `pre_mutate`"):
        late.add_decorator(counted)
    assert start_step.add_decorator(counted) is not None
    assert start_step.add_decorator("counted") is None  # the same kind: kept once
    with pytest.raises(MetaflowException, match="only allowed in the `pre_mutate`"):
        late.remove_decorator("counted")
    assert start_step.remove_decorator("counted") is True


# -- MutableFlow ---------------------------------------------------------------------------------
class WithParam(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_parameters_are_added_and_removed_in_pre_mutate_only():
    class adder(FlowMutator):
        def pre_mutate(self, mutable_flow):
            assert [n for n, _ in mutable_flow.parameters] == ["alpha"]
            mutable_flow.add_parameter("beta", Parameter("beta", default=2))
            assert mutable_flow.remove_parameter("alpha") is True
            with pytest.raises(MutatorError, match="already has a member 'beta'"):
                mutable_flow.add_parameter("beta", Parameter("beta"))

        def mutate(self, mutable_flow):
            mutable_flow.add_parameter("gamma", Parameter("gamma"))

    cls = adder(type("Flow", (WithParam,), {}))
    with pytest.raises(MutatorError, match="Adding parameter 'gamma'.*only allowed in the "
                                           "`pre_mutate`"):
        mutated_class(cls, {})
    with pytest.raises(MetaflowException, match="only allowed in the `pre_mutate`"):
        MutableFlow(cls, pre_mutate=False, inserted_by=["t"]).add_parameter("x", Parameter("x"))


def test_flow_decorators_are_added_by_name_and_removed():
    seen = []

    class proj(FlowMutator):
        def pre_mutate(self, mutable_flow):
            assert mutable_flow.remove_decorator("project") is True
            mutable_flow.add_decorator("project:name=from_mutator")
            seen.extend(n for n, _, _, _ in mutable_flow.decorator_specs)

    cls = proj(project(name="original")(type("Flow", (WithParam,), {})))
    derived = mutated_class(cls, {})
    assert derived._rf_project.name == "from_mutator" and cls._rf_project.name == "original"
    assert seen == ["project", "proj"]


def test_mutators_run_bases_first_in_the_order_applied_and_can_add_more():
    order = []

    def recorder(label, adds=None):
        def pre_mutate(self, mutable_flow):
            order.append(("pre", label))
            if adds is not None:
                mutable_flow.add_decorator(adds)

        def mutate(self, mutable_flow):
            order.append(("mutate", label))

        return type(f"recorder_{label}", (FlowMutator,),
                    {"pre_mutate": pre_mutate, "mutate": mutate, "__module__": __name__})

    late = recorder("late")
    base = recorder("base")(type("Base", (WithParam,), {}))
    child = recorder("own2")(recorder("own1", adds=late)(type("Child", (base,), {})))
    mutated_class(child, {})
    assert order == [("pre", "base"), ("pre", "own1"), ("pre", "own2"), ("pre", "late"),
                     ("mutate", "base"), ("mutate", "own1"), ("mutate", "own2"),
                     ("mutate", "late")]


def test_a_mutator_given_arguments_needs_init():
    class no_init(FlowMutator):
        pass

    cls = no_init(3)(type("Flow", (WithParam,), {}))
    with pytest.raises(MutatorError, match="does not define init"):
        mutated_class(cls, {})


# -- user step decorators, class form ---------------------------------------------------------
def test_a_user_decorator_below_step_is_an_error():
    with pytest.raises(MutatorError, match="Put @wrapped above @step"):
        class wrapped(UserStepDecorator):
            pass

        class Bad(FlowSpec):
            @step
            @wrapped
            def start(self):
                self.next(self.end)


def test_user_step_decorator_needs_a_generator():
    with pytest.raises(MutatorError, match="generator function"):
        @user_step_decorator
        def not_a_generator(step_name, flow, inputs):
            return None


# -- errors as people see them ------------------------------------------------------------------
BAD_MUTATOR = """
    from rayflow import FlowMutator, FlowSpec, step

    class explodes(FlowMutator):
        def pre_mutate(self, mutable_flow):
            settings = {}
            settings["missing"]

    @explodes
    class BadFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
"""

UNKNOWN_SPEC = """
    from rayflow import FlowMutator, FlowSpec, step

    class adds_unknown(FlowMutator):
        def pre_mutate(self, mutable_flow):
            mutable_flow.add_decorator("NoSuchMutator:x=1")

    @adds_unknown
    class UnknownFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
"""


@pytest.mark.parametrize("body,expected", [
    (BAD_MUTATOR, ["FlowMutator explodes (", "flow.py:4) raised in pre_mutate: KeyError: "
                   "'missing'", 'settings["missing"]']),
    (UNKNOWN_SPEC, ["FlowMutator adds_unknown (", "add_decorator('NoSuchMutator:x=1')",
                    "no flow decorator or FlowMutator is named 'NoSuchMutator'"]),
])
def test_a_bad_mutator_is_one_user_error_naming_it(tmp_path, body, expected):
    path = write_flow(tmp_path, body)
    for args in (["run", path], ["check", path]):
        proc = cli(*args, cwd=str(tmp_path))
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("Flow mutator failed:") == 1, proc.stderr
        for text in expected:
            assert text in proc.stderr, proc.stderr
        assert "rayflow/user_decorators" not in proc.stderr  # the user's frames only


def test_show_and_check_see_the_mutated_flow():
    shown = cli("show", FLOW)
    assert shown.returncode == 0, shown.stderr
    # @environment added by a FlowMutator, @stamp by a StepMutator (@add_stamp)
    assert "Step start  @environment @stamp @add_stamp" in shown.stdout
    assert "Step work  @environment @even_only" in shown.stdout  # a user step decorator
    assert "--width" in shown.stdout                    # a parameter a mutator added
    checked = cli("check", FLOW)
    assert checked.returncode == 0 and "looks good" in checked.stdout, checked.stderr


# -- user step decorators: the generator form's edge cases ----------------------------------
EDGES = """
    from rayflow import FlowSpec, UserStepDecorator, step, user_step_decorator

    @user_step_decorator
    def never_yields(step_name, flow, inputs):
        flow.before = True
        return
        yield

    @user_step_decorator
    def catches(step_name, flow, inputs):
        try:
            yield
        except KeyError as exc:
            flow.caught = str(exc)

    class keeps_own_state(UserStepDecorator):
        def pre_step(self, step_name, flow, inputs=None):
            self.started = step_name

        def post_step(self, step_name, flow, exception=None):
            flow.state_of_wrapper = self.started
            return None, None

    class EdgesFlow(FlowSpec):
        @never_yields
        @step
        def start(self):
            self.ran = True
            self.next(self.middle)

        @keeps_own_state
        @catches
        @step
        def middle(self):
            raise KeyError("inner")
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def test_generator_that_never_yields_skips_and_one_that_catches_swallows(tmp_path):
    run = run_inline(write_flow(tmp_path, EDGES), str(tmp_path / "ds"))
    start = run["start"].task.data
    assert start.before is True and "ran" not in run["start"].task  # the step did not run
    middle = run["middle"].task.data
    assert middle.caught == "'inner'" and middle.state_of_wrapper == "middle"
    assert run["end"].task.finished


def test_a_mutator_on_the_wrong_kind_of_target_is_an_error():
    class flow_level(FlowMutator):
        pass

    class step_level(StepMutator):
        pass

    with pytest.raises(MutatorError, match="put it above the flow's class, not on the step"):
        class A(FlowSpec):
            @flow_level
            @step
            def start(self):
                self.next(self.end)

    with pytest.raises(MutatorError, match="put it above @step, not on the flow class B"):
        @step_level
        class B(FlowSpec):
            pass
