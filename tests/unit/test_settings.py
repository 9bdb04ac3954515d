"""rayflow/settings.py: every RAYFLOW_* variable declared once, parsed one way, listed in
`rayflow --help` and the README; a bad value is one error naming the variable."""

import ast
import os
import pathlib
import re

import pytest

from rayflow import settings
from rayflow.exceptions import RayflowException
from rayflow.settings import SettingError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _declared() -> set[str]:
    return {s.name for s in settings.ALL}


def test_every_rayflow_variable_the_code_names_is_declared():
    # Any RAYFLOW_* name in rayflow/ or cli/ (outside settings.py) must be a declared setting:
    # a new variable read elsewhere, or a typo, fails here.
    found = set()
    for path in [*ROOT.glob("rayflow/**/*.py"), *ROOT.glob("cli/*.py")]:
        if path.name == "settings.py":
            continue
        found |= set(re.findall(r"\bRAYFLOW_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    assert found <= _declared(), found - _declared()


def test_no_module_reads_a_rayflow_variable_from_the_environment_itself():
    offenders = []
    for path in [*ROOT.glob("rayflow/**/*.py"), *ROOT.glob("cli/*.py")]:
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith("RAYFLOW_") and " " not in node.value:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not offenders, offenders


@pytest.mark.parametrize("setting", settings.ALL, ids=lambda s: s.name)
def test_each_setting_has_a_type_a_default_and_a_meaning(setting, monkeypatch):
    assert setting.type in ("flag", "seconds", "text", "path", "names")
    assert setting.meaning.strip() and "\n" not in setting.meaning
    assert setting.describe_default()
    monkeypatch.delenv(setting.name, raising=False)
    for other in setting.also:
        monkeypatch.delenv(other, raising=False)
    default = setting.get()
    if setting.type == "path":
        assert default == os.path.abspath(os.path.expanduser(setting.default))
    else:
        assert default == setting.default


@pytest.mark.parametrize("raw,value", [("1", True), ("true", True), ("YES", True), ("on", True),
                                       ("0", False), ("false", False), ("No", False),
                                       ("off", False), ("", False), ("  ", False)])
def test_flags(raw, value, monkeypatch):
    monkeypatch.setenv("RAYFLOW_NO_REPORT", raw)
    assert settings.NO_REPORT.get() is value


@pytest.mark.parametrize("setting,raw", [
    (settings.NO_WARM_RAY, "maybe"),
    (settings.DATASTORE_OUTAGE_S, "soon"),
    (settings.DATASTORE_OUTAGE_S, "-1"),
    (settings.RUN_LEASE_S, "nan"),
    (settings.UNSCHEDULABLE_TIMEOUT, "2 minutes"),
], ids=lambda v: getattr(v, "name", v))
def test_a_bad_value_is_one_error_naming_the_variable(setting, raw, monkeypatch):
    monkeypatch.setenv(setting.name, raw)
    with pytest.raises(SettingError) as info:
        setting.get()
    assert isinstance(info.value, RayflowException)  # the CLI prints it as one message
    assert f"{setting.name}={raw!r}" in str(info.value)


def test_seconds_names_and_paths_parse(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYFLOW_RUN_LEASE_S", "2.5")
    assert settings.RUN_LEASE_S.get() == 2.5
    monkeypatch.setenv("RAYFLOW_CARD_MODULES", " a.cards, ,b ")
    assert settings.CARD_MODULES.get() == ("a.cards", "b")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAYFLOW_HOME", "home")
    assert settings.HOME.get() == str(tmp_path / "home")


def test_metaflows_name_is_read_when_rayflows_is_unset(monkeypatch):
    monkeypatch.delenv("RAYFLOW_CARD_NO_WARNING", raising=False)
    monkeypatch.setenv("METAFLOW_CARD_NO_WARNING", "1")
    assert settings.CARD_NO_WARNING.get() is True
    monkeypatch.setenv("RAYFLOW_CARD_NO_WARNING", "0")  # rayflow's own name comes first
    assert settings.CARD_NO_WARNING.get() is False


def test_the_settings_are_read_where_they_are_used(monkeypatch):
    from rayflow.datastore.flow_datastore import run_lease_seconds
    from rayflow.runtime.cluster import FeasibilityWatch

    monkeypatch.setenv("RAYFLOW_RUN_LEASE_S", "7")
    assert run_lease_seconds() == 7.0
    monkeypatch.setenv("RAYFLOW_RUN_LEASE_S", "a minute")  # was a silent fallback to 60
    with pytest.raises(SettingError, match="RAYFLOW_RUN_LEASE_S"):
        run_lease_seconds()
    monkeypatch.setenv("RAYFLOW_UNSCHEDULABLE_TIMEOUT", "soon")  # was a ValueError traceback
    with pytest.raises(SettingError, match="RAYFLOW_UNSCHEDULABLE_TIMEOUT"):
        FeasibilityWatch(ray=None)


def test_rayflow_help_lists_every_setting():
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for s in settings.ALL:
        assert s.name in result.output
        assert s.meaning.split()[0] in result.output


def test_the_readmes_table_is_the_declarations():
    readme = (ROOT / "README.md").read_text()
    assert settings.markdown_table() in readme, \
        "README.md's settings table is stale: paste rayflow.settings.markdown_table() into it"
