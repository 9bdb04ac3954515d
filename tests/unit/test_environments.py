"""@pypi/@conda on the driver, without Ray: how base and step decorators merge (as Metaflow
merges them), the requirement strings, and the runs refused before Ray starts (a package that
cannot be resolved, @conda without conda, a python= rayflow cannot give, --executor inline)."""

import os
import subprocess
import sys

import pytest

from rayflow.decorators import StepDecorators
from rayflow.exceptions import InvalidFlowError, StepEnvironmentError
from rayflow.runtime import environments as envs
from rayflow.runtime.flowfile import load_flow
from tests.wheels import make_wheel

FLOW = """
from rayflow import FlowSpec, step, pypi, pypi_base, conda, conda_base

{base}
class EnvFlow(FlowSpec):
    {start_deco}
    @step
    def start(self):
        self.next(self.end)

    {end_deco}
    @step
    def end(self):
        pass
"""


def _flow(tmp_path, base="", start_deco="", end_deco=""):
    path = tmp_path / "env_flow.py"
    path.write_text(FLOW.format(base=base, start_deco=start_deco, end_deco=end_deco))
    return str(path)


def _decos(loaded):
    return {s: StepDecorators.for_step(getattr(loaded.cls, s)) for s in loaded.graph.steps}


def _requests(tmp_path, **kw):
    loaded = load_flow(_flow(tmp_path, **kw))
    return envs.step_requests(loaded.cls, loaded.graph, _decos(loaded))


def test_the_step_adds_to_and_overrides_the_base(tmp_path):
    got = _requests(tmp_path, base='@pypi_base(packages={"a": "1", "b": "2"}, python="3")',
                    start_deco='@pypi(packages={"b": "3", "c": ""})')
    assert got["start"] == ("pypi", {"a": "1", "b": "3", "c": ""}, "3")
    assert got["end"] == ("pypi", {"a": "1", "b": "2"}, "3")


def test_disabled_and_conda_libraries(tmp_path):
    got = _requests(tmp_path, base='@conda_base(libraries={"x": "1"})',
                    start_deco="@conda(disabled=True)", end_deco='@conda(packages={"y": "2"})')
    assert "start" not in got
    assert got["end"] == ("conda", {"x": "1", "y": "2"}, None)
    assert _requests(tmp_path) == {}


def test_requirement_strings_as_metaflow_reads_them():
    assert envs.requirement("pandas", "2.2.2") == "pandas==2.2.2"
    assert envs.requirement("pandas", ">=2,<3") == "pandas>=2,<3"
    assert envs.requirement("pandas", "") == "pandas"


def test_packages_must_be_a_dict_of_versions(tmp_path):
    with pytest.raises(InvalidFlowError, match=r"packages is a dict"):
        load_flow(_flow(tmp_path, start_deco='@pypi(packages=["pandas"])'))


def test_a_python_rayflow_cannot_give_is_refused(tmp_path):
    loaded = load_flow(_flow(tmp_path, start_deco='@pypi(python="2.7")'))
    with pytest.raises(StepEnvironmentError, match=r"Step 'start' .*python='2.7'"):
        envs.attach_environments(loaded.cls, loaded.graph, _decos(loaded), "ray")
    same = "%d.%d" % sys.version_info[:2]
    loaded = load_flow(_flow(tmp_path, start_deco=f'@pypi(python="{same}")'))
    envs.attach_environments(loaded.cls, loaded.graph, _decos(loaded), "ray")


def test_conda_runtime_env_where_conda_is_found(tmp_path, monkeypatch):
    """No conda here: a stand-in on PATH shows the runtime_env a node with conda gets."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "conda").write_text("#!/bin/sh\n")
    (fake / "conda").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("RAY_CONDA_HOME", raising=False)
    loaded = load_flow(_flow(tmp_path, start_deco='@conda(packages={"numpy": "1.26.4"})'))
    decos = _decos(loaded)
    lineage = envs.attach_environments(loaded.cls, loaded.graph, decos, "ray")
    env = decos["start"].runtime_env
    deps = env["conda"]["dependencies"]
    assert deps[:2] == ["numpy=1.26.4", "pip"]
    assert any(r.startswith("pyarrow") for r in deps[2]["pip"])
    assert not any(r.startswith("ray") for r in deps[2]["pip"])  # Ray adds its own
    assert env["py_modules"][0].endswith("rayflow")
    assert lineage == {"start": {"type": "conda", "requirements": ["numpy=1.26.4"],
                                 "installer": "conda"}}
    assert decos["end"].runtime_env is None


def _rayflow(tmp_path, flow, *args, **env):
    full = {**os.environ, "RAYFLOW_NO_WARM_RAY": "1", **env}
    full.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", "run", flow,
                           "--datastore", str(tmp_path / "ds"), *args],
                          capture_output=True, text=True, env=full, timeout=300)


def _refused_before_ray(proc, tmp_path):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "Ray" not in out.split("Step environment:")[0]
    # No run was recorded: the run stopped before it started.
    assert not list((tmp_path / "ds").rglob("*run*.json")), list((tmp_path / "ds").rglob("*"))
    return out


def test_an_unresolvable_package_stops_the_run_before_ray_starts(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "rfpin", "1.0", {"rfpin.py": "V = 1\n"})
    flow = _flow(tmp_path, start_deco='@pypi(packages={"rfpin": "9.9", "nosuchpkg-rf": ""})')
    proc = _rayflow(tmp_path, flow, RAYFLOW_PYPI_OPTIONS=f"--no-index --find-links {wheels}")
    out = _refused_before_ray(proc, tmp_path)
    line = next(ln for ln in out.splitlines() if ln.startswith("Step environment:"))
    assert "Step 'start' (" in line and "@pypi cannot install" in line
    assert "rfpin==9.9" in line or "nosuchpkg-rf" in line
    assert "Nothing has run" in out


NO_CONDA = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "CONDA_EXE": "",
            "RAY_CONDA_HOME": ""}


def test_conda_without_conda_stops_the_run_before_ray_starts(tmp_path):
    """No conda, and PyPI cannot stand in (an empty wheel folder is the only index)."""
    (tmp_path / "empty").mkdir()
    flow = _flow(tmp_path, base='@conda_base(packages={"numpy": "1.26.4"})')
    proc = _rayflow(tmp_path, flow, **NO_CONDA,
                    RAYFLOW_PYPI_OPTIONS=f"--no-index --find-links {tmp_path / 'empty'}")
    out = _refused_before_ray(proc, tmp_path)
    assert "Steps 'start'" in out and "'end'" in out and "Install conda" in out
    assert "numpy==1.26.4" in out  # the resolver's reason


def test_conda_without_conda_takes_what_pypi_has(tmp_path, monkeypatch):
    """Without conda, @conda packages that PyPI has (here: a wheel folder) come through uv,
    and one line says so; the lineage says which installer made it."""
    make_wheel(str(tmp_path), "rfpin", "1.0", {"rfpin.py": "V = 1\n"})
    for name, value in NO_CONDA.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAYFLOW_PYPI_OPTIONS", f"--no-index --find-links {tmp_path}")
    loaded = load_flow(_flow(tmp_path, start_deco='@conda(libraries={"rfpin": "1.0"})'))
    decos, said = _decos(loaded), []
    lineage = envs.attach_environments(loaded.cls, loaded.graph, decos, "ray", said.append)
    assert decos["start"].runtime_env["uv"]["packages"] == ["rfpin==1.0"]
    assert lineage["start"] == {"type": "conda", "requirements": ["rfpin==1.0"],
                                "installer": "uv"}
    assert len(said) == 1 and "no conda here" in said[0] and "rfpin==1.0" in said[0]


def test_inline_executor_refuses_a_pypi_step(tmp_path):
    flow = _flow(tmp_path, end_deco='@pypi(packages={"x": "1"})')
    proc = _rayflow(tmp_path, flow, "--executor", "inline", "--environment", "pypi")
    out = _refused_before_ray(proc, tmp_path)
    assert "Step 'end'" in out and "--executor ray" in out


def test_pip_resolves_where_uv_is_missing(tmp_path):
    make_wheel(str(tmp_path), "rfpin", "1.0", {"rfpin.py": "V = 1\n"})
    options = ["--no-index", "--find-links", str(tmp_path)]
    assert envs.resolve(["rfpin==1.0"], options, None) is None
    assert "rfpin==9.9" in envs.resolve(["rfpin==9.9"], options, None)
    assert envs.pypi_runtime_env(["rfpin==1.0"], options, uv=False) == {
        "pip": {"packages": ["rfpin==1.0"], "pip_install_options": options}}


def test_python_flow_py_environment_pypi_run_reaches_rayflow_run():
    from rayflow_cli.main import flow_command_argv

    class F:
        pass

    argv = flow_command_argv(F, "flow.py", ["--environment=pypi", "run", "--x", "1"])
    assert argv[:2] == ["run", "flow.py"] and argv[-2:] == ["--environment", "pypi"]
    assert "--environment" not in flow_command_argv(F, "flow.py",
                                                    ["--environment", "conda", "show"])
