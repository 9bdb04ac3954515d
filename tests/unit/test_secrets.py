"""@secrets without Ray: sources, providers, the checks on what they return, what the
decorator shows of itself, the environment it leaves behind, Metaflow's `_graph`, and the
one-line notes for decorators a run does not act on."""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import textwrap
from types import SimpleNamespace

import pytest

from rayflow.decorators import StepDecorators
from rayflow.exceptions import InvalidFlowError
from rayflow.graph.info import decorator_info
from rayflow.plugins.secrets import (
    SecretsProvider,
    get_secret,
    register_secrets_provider,
    secrets_provider_types,
)
from rayflow.plugins.secrets.secrets_decorator import SecretsDecorator, prepare_secrets
from rayflow.plugins.secrets.spec import SecretsError, check_disjoint, parse_source, read_source
from rayflow.runtime.isolation import TaskIsolation


@pytest.fixture
def token() -> str:
    return "tok-" + pysecrets.token_hex(12)


def inline(values: dict, id_: str = "1") -> dict:
    return {"type": "inline", "id": id_, "options": {"env_vars": values}}


def test_sources_as_strings_and_dicts(monkeypatch):
    assert str(parse_source("env.A_B", None)) == "A_B (env)"
    spec = parse_source({"type": "file", "id": "x.env", "role": "r2"}, role="r1")
    assert (spec.secrets_backend_type, spec.secret_id, spec.role) == ("file", "x.env", "r2")
    monkeypatch.delenv("METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE", raising=False)
    with pytest.raises(SecretsError, match="METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE"):
        parse_source("plain", None, step="start")
    monkeypatch.setenv("METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE", "env")
    monkeypatch.setenv("METAFLOW_DEFAULT_SECRETS_ROLE", "default-role")
    spec = parse_source("plain", None)
    assert (spec.secrets_backend_type, spec.role) == ("env", "default-role")


def test_a_bad_source_is_refused_when_the_decorator_is_applied_without_its_options(token):
    with pytest.raises(InvalidFlowError, match="'id' must be a str") as err:
        SecretsDecorator(sources=[{"type": "inline", "options": {"env_vars": {"A": token}}}])
    assert token not in str(err.value)
    with pytest.raises(InvalidFlowError, match="list of sources"):
        SecretsDecorator(sources="env.A")
    with pytest.raises(InvalidFlowError, match="unknown keys 'opts'"):
        SecretsDecorator(sources=[{"id": "x", "opts": {"A": token}}])


def test_with_on_the_command_line():
    from rayflow.decorators import parse_with_spec

    deco = parse_with_spec('secrets:sources=["env.HOME"],allow_override=False')
    assert deco.attributes["sources"] == ["env.HOME"] and deco.attributes["allow_override"] is False
    assert parse_with_spec("secrets:allow_override=True").attributes["allow_override"] is True


def test_the_decorator_shows_types_and_ids_never_options(token):
    deco = SecretsDecorator(sources=["env.A", inline({"A_SECRET": token}, "demo")], role="r")
    deco.name = "secrets"
    shown = json.dumps(decorator_info(deco)) + repr(deco)
    assert token not in shown and "demo" in shown and "env.A" in shown
    assert token not in repr(parse_source(inline({"A": token}), None))


def test_unknown_type_names_the_step_and_the_known_types():
    decos = {"start": StepDecorators([SecretsDecorator(sources=["vault.db"])])}
    with pytest.raises(SecretsError) as err:
        prepare_secrets(decos)
    assert "Step 'start'" in str(err.value) and "'vault'" in str(err.value)
    assert "env, file, inline" in str(err.value)


def test_env_and_file_read_on_the_driver_inline_in_the_task(tmp_path, monkeypatch, token):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.env").write_text(f"FILE_A={token}\nFILE_B='two words'\n")
    (tmp_path / "s.json").write_text(json.dumps({"J": token, "K": "k"}))
    monkeypatch.setenv("DRIVER_X", token)
    deco = SecretsDecorator(sources=["env.DRIVER_X", {"type": "file", "id": "s.env"},
                                     {"type": "file", "id": "s.json",
                                      "options": {"keys": ["K"]}},
                                     inline({"I": "i"})])
    prepared = prepare_secrets({"start": StepDecorators([deco])})["start"]
    assert [values for _, values in prepared] == [
        {"DRIVER_X": token}, {"FILE_A": token, "FILE_B": "two words"}, {"K": "k"}, None]


def test_a_failing_source_is_one_message_naming_step_and_source_without_value(tmp_path,
                                                                              token):
    bad = tmp_path / "bad.json"
    bad.write_text('{"A": "%s", ' % token)  # cut short: not JSON
    deco = SecretsDecorator(sources=[{"type": "file", "id": str(bad)}])
    with pytest.raises(SecretsError) as err:
        prepare_secrets({"train": StepDecorators([deco])})
    msg = str(err.value)
    assert "Step 'train'" in msg and f"{bad} (file)" in msg and "not valid JSON" in msg
    assert token not in msg
    with pytest.raises(SecretsError, match="has no RF_SURELY_UNSET_VAR"):
        get_secret("env.RF_SURELY_UNSET_VAR")


@pytest.mark.parametrize("values, words", [
    ({"1BAD": "v"}, "'1BAD' is not a valid"),
    ({"METAFLOW_USER": "v"}, "'METAFLOW_USER' is refused"),
    ({"GOOD": 12345}, "value of 'GOOD' is a int"),
])
def test_what_a_provider_returns_is_checked(values, words):
    with pytest.raises(SecretsError, match=words) as err:
        read_source(parse_source(inline(values), None), step="s")
    assert "v'" not in str(err.value) and "12345" not in str(err.value)


def test_clashes_between_sources_and_with_the_environment(token):
    a, b = parse_source(inline({"X": "1"}, "a"), None), parse_source(inline({"X": "2"}, "b"),
                                                                      None)
    with pytest.raises(SecretsError, match="'a \\(inline\\)' and 'b \\(inline\\)' both set"):
        check_disjoint([(a, {"X": "1"}), (b, {"X": "2"})], "s", False, environ={})
    with pytest.raises(SecretsError, match="allow_override=True") as err:
        check_disjoint([(a, {"X": token})], "s", False, environ={"X": "old"})
    assert token not in str(err.value) and "old" not in str(err.value)
    check_disjoint([(a, {"X": "same"})], "s", False, environ={"X": "same"})
    check_disjoint([(a, {"X": token})], "s", True, environ={"X": "old"})


def test_the_step_sees_its_secrets_and_the_next_task_does_not(token):
    deco = SecretsDecorator(sources=[inline({"RF_UNIT_SECRET": token})])
    ctx = SimpleNamespace(step_name="start")
    iso = TaskIsolation()
    iso.before_task()
    deco.task_pre_step(None, ctx)
    assert os.environ["RF_UNIT_SECRET"] == token
    iso.after_task()  # the worker's isolation puts the environment back...
    assert "RF_UNIT_SECRET" not in os.environ
    deco.task_pre_step(None, ctx)
    deco.task_post_step(None, ctx)  # ...and so does the decorator (an in-process task)
    assert "RF_UNIT_SECRET" not in os.environ


def test_a_provider_of_your_own(token):
    class Vault(SecretsProvider):
        TYPE = "unit-vault"

        def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
            if secret_id == "down":
                raise ConnectionError("vault unreachable")
            return {"VAULT_" + secret_id.upper(): token, "ROLE": str(role)}

    register_secrets_provider(Vault)
    assert "unit-vault" in secrets_provider_types()
    assert get_secret("unit-vault.db", role="reader") == {"VAULT_DB": token, "ROLE": "reader"}
    deco = SecretsDecorator(sources=["unit-vault.down"])
    with pytest.raises(SecretsError) as err:
        deco.task_pre_step(None, SimpleNamespace(step_name="load", _secrets=None))
    assert str(err.value) == ("Step 'load': @secrets source 'down (unit-vault)' could not be "
                              "read: ConnectionError: vault unreachable")
    with pytest.raises(SecretsError, match="SecretsProvider subclass"):
        register_secrets_provider(dict)


GRAPH_FLOW = """
from rayflow import FlowSpec, step, secrets, schedule, trigger, kubernetes, resources

@trigger(event="data_ready")
@schedule(cron="0 2 * * *")
class GraphFlow(FlowSpec):
    @secrets(sources=["env.HOME"])
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @kubernetes(cpu=2, image="python:3.11")
    @resources(disk=1000)
    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _graph_flow(tmp_path):
    from rayflow.runtime.flowfile import load_flow

    path = tmp_path / "graph_flow.py"
    path.write_text(textwrap.dedent(GRAPH_FLOW))
    return load_flow(str(path))


def test_metaflow_graph_on_the_flow(tmp_path):
    loaded = _graph_flow(tmp_path)
    graph = loaded.cls.__new__(loaded.cls)._graph
    assert [n.name for n in graph] == ["start", "work", "join", "end"]
    start, work, join = graph["start"], graph["work"], graph["join"]
    assert (start.type, start.foreach_param, start.matching_join) == ("foreach", "items", "join")
    assert work.is_inside_foreach and not join.is_inside_foreach
    assert work.in_funcs == ["start"] and join.type == "join" and join.num_args == 2
    assert not any(n.parallel_step or n.parallel_foreach for n in graph)
    assert [d.name for d in start.decorators] == ["secrets"]
    assert graph.start_step == "start" and "end" in graph and graph.end_step == "end"


def test_run_notes_say_once_what_is_not_done(tmp_path):
    from rayflow.unsupported import flow_decorator_lines, run_notes

    loaded = _graph_flow(tmp_path)
    decos = {s: StepDecorators.for_step(getattr(loaded.cls, s)) for s in loaded.graph.steps}
    notes = run_notes(loaded.cls, decos)
    assert len(notes) == 3
    assert notes[0] == ("Note: @schedule(cron='0 2 * * *'), @trigger(event='data_ready') take "
                        "effect only when the flow is deployed to a scheduler, which rayflow "
                        "does not do yet: this run starts now, once.")
    assert notes[1].startswith("Note: @kubernetes (step work) runs on this run's Ray, not on "
                               "Kubernetes") and "image ignored" in notes[1]
    assert notes[2].startswith("Note: @resources(disk=...) (step work)")
    assert "\n" not in "".join(notes)
    lines = flow_decorator_lines(loaded.cls)
    assert any(line.startswith("@schedule(cron='0 2 * * *') (takes effect when") for line in lines)
