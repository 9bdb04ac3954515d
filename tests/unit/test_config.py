"""Config values and delayed config expressions: pure logic, no run."""

from __future__ import annotations

import json
import pickle

import pytest

from rayflow import Config, ConfigValue, FlowSpec, Parameter, config_expr, environment, step
from rayflow.config import apply_configs, resolve_configs, resolve_delayed
from rayflow.decorators import DeferredDecorator, StepDecorators
from rayflow.exceptions import InvalidFlowError, ParameterError
from rayflow.parameters import flow_constant_names, flow_parameters, resolve_parameters


def test_a_config_value_reads_as_keys_and_attributes_and_cannot_change():
    v = ConfigValue({"a": 1, "nested": {"b": [1, {"c": 2}]}})
    assert v.a == 1 and v["nested"].b[1].c == 2 and v.nested["b"][0] == 1
    assert v == {"a": 1, "nested": {"b": [1, {"c": 2}]}}
    for change in (lambda: v.__setitem__("a", 2), lambda: setattr(v, "a", 2),
                   lambda: v.update(a=3), lambda: v.nested.__setitem__("b", 0),
                   lambda: v.pop("a")):
        with pytest.raises(TypeError, match="read-only"):
            change()
    copy = v.to_dict()
    copy["a"] = 5
    assert v.a == 1 and isinstance(copy["nested"], dict)
    assert pickle.loads(pickle.dumps(v)) == v and json.loads(json.dumps(v)) == v
    with pytest.raises(AttributeError, match="no key 'zz'"):
        _ = v.zz


class Configured(FlowSpec):
    config = Config("config", default_value={"n": 2, "who": "Ann"})
    env = Config("env", default_value={"vars": {"A": "1"}})
    text = Config("text", default_value="k: v", parser=lambda s: dict([s.split(": ")]))
    req = Config("req", required=True)
    plain = Config("plain", default_value='[1, 2]', plain=True)
    size = Parameter("size", default=config_expr("config").n, type=int)
    doubled = Parameter("doubled", default=lambda ctx: ctx.configs.config.n * 2, type=int)

    @environment(vars={"WHO": config.who, "N": config_expr("str(config.n * 10)")})
    @step
    def start(self):
        self.next(self.end)

    @environment(**env)
    @step
    def end(self):
        pass


def test_configs_resolve_from_values_files_env_and_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("METAFLOW_FLOW_CONFIG", raising=False)
    monkeypatch.delenv("METAFLOW_FLOW_CONFIG_VALUE", raising=False)
    with pytest.raises(ParameterError, match="Config 'req' of flow Configured is required"):
        resolve_configs(Configured)
    got = resolve_configs(Configured, values={"req": '{"x": 1}'})
    assert got["config"].who == "Ann" and got["text"] == {"k": "v"}
    # plain=True without a parser keeps the text itself, as Metaflow does
    assert got["req"].x == 1 and got["plain"] == "[1, 2]"
    path = tmp_path / "req.json"
    path.write_text('{"x": 2}')
    assert resolve_configs(Configured, files={"req": str(path)})["req"].x == 2
    monkeypatch.setenv("METAFLOW_FLOW_CONFIG_VALUE", json.dumps({"req": {"x": 3}}))
    assert resolve_configs(Configured)["req"].x == 3
    with pytest.raises(ParameterError, match="no config 'nope'"):
        resolve_configs(Configured, values={"nope": "{}"})
    with pytest.raises(ParameterError, match="could not be parsed as JSON"):
        resolve_configs(Configured, values={"req": "{not json"})
    with pytest.raises(ParameterError, match="cannot read the file"):
        resolve_configs(Configured, files={"req": str(tmp_path / "missing.json")})


def test_parameters_and_decorators_read_the_configs(monkeypatch):
    monkeypatch.setenv("METAFLOW_FLOW_CONFIG_VALUE", json.dumps({"req": {}}))
    values = resolve_parameters(Configured, {}, config_values={"config": json.dumps(
        {"n": 7, "who": "Bo"})}, user="tester")
    assert values["size"] == 7 and values["doubled"] == 14 and values["config"].n == 7
    assert [p.name for p in flow_parameters(Configured)] == ["size", "doubled"]
    assert not {"config", "env", "text", "req", "plain"} & flow_constant_names(Configured)
    start = StepDecorators.for_step(Configured.start, configs=values)
    assert start.get("environment").attributes["vars"] == {"WHO": "Bo", "N": "70"}
    end = StepDecorators.for_step(Configured.end, configs=values)
    assert end.get("environment").attributes["vars"] == {"A": "1"}
    assert isinstance(Configured.start.decorators[0], DeferredDecorator)
    apply_configs(Configured, values)


def test_a_bad_config_expression_is_a_clear_error():
    with pytest.raises(InvalidFlowError, match="could not be evaluated"):
        resolve_delayed(config_expr("nope.x"), {"config": {}})
    with pytest.raises(InvalidFlowError, match="config.missing"):
        resolve_delayed(config_expr("config").missing, {"config": ConfigValue({"a": 1})})
    with pytest.raises(InvalidFlowError, match="default .a file. or default_value"):
        Config("c", default="f.json", default_value={})


class PlainConfigs(FlowSpec):
    as_tuple = Config("as-tuple", default_value='{"n": "t", "c": 2}', plain=True,
                      parser=lambda s: tuple(json.loads(s).values()))
    as_list = Config("as-list", default_value="a,b", plain=True, parser=lambda s: s.split(","))
    nothing = Config("nothing", default_value=None, plain=True)

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class ListWithoutPlain(FlowSpec):
    items = Config("items", default_value="a,b", parser=lambda s: s.split(","))

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_a_plain_config_keeps_what_its_parser_returns():
    got = resolve_configs(PlainConfigs)
    assert got["as-tuple"] == ("t", 2) and got["as-list"] == ["a", "b"]
    assert got["nothing"] is None
    with pytest.raises(ParameterError, match="is a list, not a mapping.*plain=True"):
        resolve_configs(ListWithoutPlain)


def test_a_config_value_freezes_dicts_inside_lists_and_tuples():
    orig = {"a": [{"b": 1}], "h": ({"i": 6},), "c": {"d": [1, 2]}}
    value = ConfigValue(orig)
    assert isinstance(value.h, tuple) and isinstance(value.h[0], ConfigValue)
    assert value.a[0].b == 1 and value.h[0].i == 6
    assert value.to_dict() == orig and type(value.to_dict()["h"]) is tuple
    assert json.loads(json.dumps(value)) == json.loads(json.dumps(orig))
