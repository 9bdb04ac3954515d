"""Behaviour public Metaflow flows rely on, checked on the in-process executor (no Ray):
parameter artifacts named after their class attribute, multiple=True, @catch's var on
success, a failed task's artifacts, current.card outside @card, and `show` of a flow without
a docstring."""

from __future__ import annotations

import sys
import textwrap

import pytest

from cli.params import split_flow_args
from rayflow import Run, default_namespace, namespace
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.run_loop import RunLoop, RunOptions


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def any_namespace():
    namespace(None)
    before = _ray_running()
    yield
    default_namespace()
    assert before or not _ray_running(), "an inline run started Ray"


def write_flow(tmp_path, body: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text("from rayflow import *\n" + textwrap.dedent(body))
    return str(path)


def run_words(path: str, datastore: str, *words: str):
    """Run as `rayflow run FILE WORDS...` parses them, on the in-process executor."""
    loaded = load_flow(path)
    values = resolve_parameters(loaded.cls, split_flow_args(loaded.cls, list(words)))
    options = RunOptions(datastore_url=datastore, executor="inline", progress=False)
    summary = RunLoop(loaded, values, options).run()
    return summary, Run(summary.pathspec, datastore=datastore)


ALIASED = """
class AliasFlow(FlowSpec):
    animal = Parameter("creature", default="dog")
    notes = IncludeFile("notes-file", default=__file__)
    cfg = Config("my-conf", default_value={"k": 1})

    @step
    def start(self):
        self.seen = (self.animal, self.cfg["k"], "AliasFlow" in self.notes,
                     list(current.parameter_names))
        self.next(self.end)

    @step
    def end(self):
        self.again = self.animal
"""


def test_parameter_artifacts_are_named_after_the_class_attribute(tmp_path):
    path = write_flow(tmp_path, ALIASED)
    summary, run = run_words(path, str(tmp_path / "ds"), "--creature", "cat")
    assert summary.successful
    start = run["start"].task
    assert run.data.animal == "cat" and run.data.again == "cat"
    assert start.data.seen == ("cat", 1, True, ["animal", "cfg", "notes"])
    assert "AliasFlow" in start.data.notes and start.data.cfg["k"] == 1
    names = {a.id for a in start}
    assert {"animal", "notes", "cfg"} <= names
    assert not names & {"creature", "notes-file", "my-conf"}


def test_runner_keyword_of_a_dashed_parameter_reaches_it(tmp_path):
    # Runner(...).run(notes_file=...) passes --notes_file for the option --notes-file.
    path = write_flow(tmp_path, ALIASED)
    other = tmp_path / "other.txt"
    other.write_text("just a note")
    _, run = run_words(path, str(tmp_path / "ds"), f"--notes_file={other}")
    assert run["start"].task.data.notes == "just a note"


MULTIPLE = """
class MultiFlow(FlowSpec):
    nums = Parameter("num", type=int, multiple=True)
    words = Parameter("word", multiple=True, type=str, default=["x"])
    chars = Parameter("chars", multiple=True, default=["ab"])

    @step
    def start(self):
        self.total = sum(self.nums)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_multiple_collects_repeated_options_into_a_tuple(tmp_path):
    path = write_flow(tmp_path, MULTIPLE)
    _, run = run_words(path, str(tmp_path / "ds"), "--num", "3", "--num=4", "--word", "y",
                       "--word", "z")
    assert run.data.nums == (3, 4) and run.data.total == 7
    assert run.data.words == ("y", "z")


def test_multiple_defaults_as_click_gives_them(tmp_path, monkeypatch):
    path = write_flow(tmp_path, MULTIPLE)
    _, run = run_words(path, str(tmp_path / "ds"))
    # No option: an empty tuple; a list default: its items, each of the default's own type
    # (click converts "ab" with `list`, as Metaflow's run shows).
    assert run.data.nums == () and run.data.words == ("x",) and run.data.chars == (["a", "b"],)
    monkeypatch.setenv("METAFLOW_RUN_NUM", "5 6")
    _, run = run_words(path, str(tmp_path / "ds"))
    assert run.data.nums == (5, 6)


CATCH = """
class CatchFlow(FlowSpec):
    @catch(var="start_failed")
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.boom)

    @catch(var="boom_failed")
    @step
    def boom(self):
        self.before = "set"
        raise ValueError("boom went the step")

    @step
    def end(self):
        self.was = (self.start_failed, type(self.boom_failed).__name__)
"""


def test_catch_var_is_none_when_the_step_succeeds(tmp_path, capfd):
    path = write_flow(tmp_path, CATCH.replace("raise ValueError(\"boom went the step\")",
                                              "raise ValueError(\"boom went the step\")\n"
                                              "        self.next(self.end)"))
    summary, run = run_words(path, str(tmp_path / "ds"))
    assert summary.successful
    assert run["start"].task.data.start_failed is None
    assert run.data.was == (None, "MetaflowExceptionWrapper")
    caught = run["boom"].task.data.boom_failed
    assert "ValueError: boom went the step" in str(caught)
    assert caught.type == "builtins.ValueError" and caught.exception == "boom went the step"
    # What a failing step set before it raised stays, as in Metaflow.
    assert run["boom"].task.data.before == "set"
    out = capfd.readouterr().out  # on stdout, as Metaflow's logger writes it
    assert "@catch caught an exception from <flow CatchFlow step boom>" in out
    assert ">  ValueError: boom went the step" in out
    assert "rayflow/" not in out.split("<flow CatchFlow step boom>")[1]  # the user's frames


FAILING = """
class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work)

    @step
    def work(self):
        self.progress = "half way"
        self.items = self.items + [3]
        if not os.environ.get("FAILING_FLOW_FIXED"):
            raise RuntimeError("work failed")
        self.next(self.end)

    @step
    def end(self):
        self.final = self.progress
"""


def test_a_failed_task_keeps_what_it_set_and_resume_runs_it_again(tmp_path, monkeypatch):
    path = write_flow(tmp_path, "import os\n" + FAILING)
    ds = str(tmp_path / "ds")
    summary, run = run_words(path, ds)
    assert not summary.successful
    task = run["work"].task
    assert not task.successful and not task.finished
    assert task.data.progress == "half way" and task["progress"].data == "half way"
    assert task.data.items == [1, 2, 3]  # its own value, not the inherited one
    assert {a.id for a in task} >= {"progress", "items"}
    assert "work failed" in str(task.exception)
    # Still not a finished task: resume runs it again (and only it and what follows).
    monkeypatch.setenv("FAILING_FLOW_FIXED", "1")
    from rayflow.runtime.resume import ResumeRequest

    loaded = load_flow(path)
    options = RunOptions(datastore_url=ds, executor="inline", progress=False,
                         resume=ResumeRequest(origin_run_id=run.id))
    resumed = RunLoop(loaded, None, options).run()
    assert resumed.successful
    new = Run(resumed.pathspec, datastore=ds)
    assert new.data.final == "half way"
    assert new["work"].task.origin_pathspec is None
    assert new["start"].task.origin_pathspec == f"FailingFlow/{run.id}/start/0"


CARD_PROBE = """
class CardProbeFlow(FlowSpec):
    @step
    def start(self):
        self.probed = hasattr(current, "card")
        try:
            current.card.append("x")
            self.appended = True
        except AttributeError:
            self.appended = False
        self.next(self.end)

    @card
    @step
    def end(self):
        self.probed = hasattr(current, "card")
"""


def test_current_card_exists_only_in_a_step_with_card(tmp_path, capfd):
    path = write_flow(tmp_path, CARD_PROBE)
    summary, run = run_words(path, str(tmp_path / "ds"))
    assert summary.successful
    start = run["start"].task.data
    assert start.probed is False and start.appended is False
    assert run.data.probed is True
    assert "warn" not in capfd.readouterr().err.lower()
    from rayflow import current

    assert not hasattr(current, "card")  # nor outside a running step, as in Metaflow


def test_show_of_a_flow_without_docstring_prints_no_docstring(tmp_path, capsys):
    from cli.main import main

    base = """
    class NoDocFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    """
    path = write_flow(tmp_path, base)
    main(["show", path])
    out = capsys.readouterr().out
    assert out.startswith("Step start"), out
    assert "Subclass it" not in out and load_flow(path).graph.to_dict()["doc"] == ""
    documented = write_flow(tmp_path, base.replace(
        "class NoDocFlow(FlowSpec):", 'class NoDocFlow(FlowSpec):\n        """Mine."""'),
        "documented.py")
    main(["show", documented])
    assert capsys.readouterr().out.startswith("Mine.\n")


WITH = """
import os

class WithFlow(FlowSpec):
    @step
    def start(self):
        self.env = (os.environ.get("A"), os.environ.get("B"))
        self.next(self.end)

    @kubernetes(cpu=1)
    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("name", ["kubernetes", "batch", "conda", "pypi", "secrets",
                                  "resources", "retry", "catch", "timeout:seconds=5",
                                  "environment", "card", "actor_pool"])
def test_every_step_decorator_works_in_with(name):
    from rayflow.decorators import parse_with_spec

    assert parse_with_spec(name).name == name.partition(":")[0]


def test_with_kubernetes_and_json_attributes_run(tmp_path):
    path = write_flow(tmp_path, WITH)
    loaded = load_flow(path)
    specs = ["kubernetes:cpu=1,memory=100,image=python:3.11",
             'environment:vars={"A": "1", "B": "2"}']
    options = RunOptions(datastore_url=str(tmp_path / "ds"), executor="inline",
                         progress=False, with_decorators=specs)
    summary = RunLoop(loaded, resolve_parameters(loaded.cls, {}), options).run()
    assert summary.successful
    assert Run(summary.pathspec, datastore=str(tmp_path / "ds")).data.env == ("1", "2")


FOREACH = """
class ClientFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.v = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_client_orders_and_generators_as_metaflow(tmp_path):
    import types

    from rayflow import Flow, Metaflow, Step
    from rayflow.exceptions import MetaflowNamespaceMismatch

    path = write_flow(tmp_path, FOREACH)
    ds = str(tmp_path / "ds")
    _, first = run_words(path, ds)
    _, second = run_words(path, ds)
    assert [r.id for r in Flow("ClientFlow", datastore=ds)] == [second.id, first.id]
    assert [s.id for s in second] == ["end", "join", "work", "start"]  # newest first
    work = second["work"]
    ids = [t.id for t in work]
    assert ids == sorted(ids, key=int, reverse=True)
    assert work.task.id == ids[0] and work.task.data.v == 3  # the newest task
    join = second["join"].task
    for gen in (join.parent_task_pathspecs, join.parent_tasks, work.task.child_tasks,
                work.task.child_task_pathspecs, second["join"].parent_steps,
                second["join"].child_steps):
        assert isinstance(gen, types.GeneratorType)
    assert sorted(p.split("/")[3] for p in join.parent_task_pathspecs) == sorted(ids, key=int)
    assert [s.id for s in second["join"].parent_steps] == ["work"]
    assert list(work.task.child_task_pathspecs) == [join.pathspec]
    assert [f.id for f in Metaflow(ds).flows] == ["ClientFlow"]
    assert [f.id for f in Metaflow(ds)] == ["ClientFlow"] and str(Metaflow(ds)) == "Metaflow()"
    namespace("user:somebody-else")
    with pytest.raises(MetaflowNamespaceMismatch):
        _ = Flow("ClientFlow", datastore=ds).latest_run
    assert Metaflow(ds).flows == []
    namespace(None)
    assert Step(f"{second.pathspec}/work", datastore=ds).task.id == ids[0]


def test_with_kubernetes_on_a_step_with_resources_takes_the_larger_of_each():
    from rayflow.decorators import ResourcesDecorator, StepDecorators, parse_with_spec

    decos = StepDecorators([ResourcesDecorator(cpu=1, memory=500),
                            parse_with_spec("kubernetes:cpu=2,memory=100")])
    assert decos.resources.ray_options() == {"num_cpus": 2.0, "memory": 500 * 1024 * 1024}
    alone = StepDecorators([parse_with_spec("batch:cpu=3,queue=q")])
    assert alone.resources.ray_options() == {"num_cpus": 3.0}
