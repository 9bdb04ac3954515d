"""@pypi on a real Ray, resolving from a folder of wheels this module writes (no network).

rayflow's venv has rapidfuzz (a dev dependency that rayflow itself never imports); the wheel
folder has a stand-in `rapidfuzz 0.0.1`. A step with @pypi(packages={"rapidfuzz": "0.0.1"})
must see 0.0.1, the next step without it the venv's version; Ray builds the environment once
for all the tasks, runs, foreach splits and pooled actors that ask for it.
"""

import contextlib
import glob
import os
import shutil
from importlib import metadata

import psutil
import pytest

from rayflow.client import Run, namespace
from tests.wheels import make_wheel

VENV_VERSION = metadata.version("rapidfuzz")
PINNED = "0.0.1"


@pytest.fixture(scope="module")
def wheel_options(tmp_path_factory, ray_session):
    """RAYFLOW_PYPI_OPTIONS pointed at the wheel folder for this module's runs; afterwards the
    environments Ray built for them are removed (each a copy of the venv: GBs)."""
    from ray._private import worker

    folder = str(tmp_path_factory.mktemp("wheels"))
    make_wheel(folder, "rapidfuzz", PINNED,
               {"rapidfuzz/__init__.py": f"__version__ = {PINNED!r}\n"})
    old = os.environ.get("RAYFLOW_PYPI_OPTIONS")
    os.environ["RAYFLOW_PYPI_OPTIONS"] = f"--no-index --find-links {folder}"
    prefixes: set = set()
    yield prefixes
    if old is None:
        os.environ.pop("RAYFLOW_PYPI_OPTIONS", None)
    else:
        os.environ["RAYFLOW_PYPI_OPTIONS"] = old
    # This module's runs are the only ones of the session's Ray that ask for environments.
    # Their workers (this session's Ray started them, each from a Python inside the session's
    # runtime_resources) end first, so that later modules find the worker pool as before.
    session = worker._global_node.get_session_dir_path()
    resources = os.path.join(session, "runtime_resources") + os.sep
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith(resources):
            with contextlib.suppress(psutil.Error):
                psutil.Process(proc.info["pid"]).kill()
    for kind in ("uv", "pip"):
        shutil.rmtree(os.path.join(session, "runtime_resources", kind), ignore_errors=True)


def _builds(ray_session, env_dir: str) -> int:
    """How often Ray's runtime-env agent of this session started building `env_dir`."""
    from ray._private import worker

    logs = worker._global_node.get_logs_dir_path()
    count = 0
    for path in glob.glob(os.path.join(logs, "runtime_env*.log")):
        with open(path, errors="replace") as fh:
            count += sum(1 for line in fh if "Cloning virtualenv" in line and env_dir in line
                         or "Creating virtualenv" in line and env_dir in line)
    return count


def test_pinned_step_sees_its_version_and_the_next_step_the_venvs(
        run_flow, datastore, wheel_options, ray_session, cli):
    namespace(None)
    s = run_flow("pypi_flow.py", {"width": 1000})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    version, module_version, prefix = run["pinned"].task.data.at_pinned
    wheel_options.add(prefix)
    assert (version, module_version) == (PINNED, PINNED)
    assert "runtime_resources" in prefix
    for step, name in (("start", "at_start"), ("plain", "at_plain"), ("end", "at_end")):
        assert getattr(run[step].task.data, name)[:2] == (VENV_VERSION, VENV_VERSION), step
    # Every split of the 1,000-split foreach and the pooled actor: the same environment.
    assert run["join"].task.data.each_seen == [(PINNED, PINNED, prefix)]
    assert run["pooled"].task.data.at_pooled == (PINNED, PINNED, prefix)
    # Lineage: the task record keeps the requirement and the version its process had.
    env = run["pinned"].task.lineage["environment"]
    assert env["requirements"] == ["rapidfuzz==0.0.1"] and env["type"] == "pypi"
    assert env["installed"] == {"rapidfuzz": PINNED}
    assert "environment" not in run["plain"].task.lineage
    dumped = cli("dump", f"{s.pathspec}/pinned/1", "--datastore", datastore, check=0)
    assert "rapidfuzz==0.0.1; installed: rapidfuzz 0.0.1" in dumped.stdout

    # A second run finds the environment Ray built: no build, the same folder.
    marker = os.path.join(prefix, "rayflow-test-marker")
    open(marker, "w").close()
    again = run_flow("pypi_flow.py", {"width": 2})
    assert again.successful, again.failures
    run2 = Run(again.pathspec, datastore=datastore)
    assert run2["pinned"].task.data.at_pinned == (PINNED, PINNED, prefix)
    assert os.path.exists(marker)
    assert _builds(ray_session, os.path.dirname(prefix)) == 1


def test_pypi_base_reaches_every_step(run_flow, datastore, wheel_options):
    namespace(None)
    s = run_flow("pypi_base_flow.py")
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    for step in ("start", "end"):
        version, _, prefix = getattr(run[step].task.data, f"at_{step}")
        assert version == PINNED, step
        wheel_options.add(prefix)
    # @pypi(disabled=True) on a step: rayflow's own venv.
    assert run["middle"].task.data.at_middle[0] == VENV_VERSION


def test_spin_runs_a_pypi_step_in_its_environment(run_flow, datastore, wheel_options, cli,
                                                   tmp_path):
    """`rayflow spin` of a @pypi step (and of one split of a @pypi foreach) sees the pinned
    version, as its run did; a step without @pypi, the venv's; the second spin reuses the
    environment the first one installed."""
    namespace(None)
    s = run_flow("pypi_flow.py", {"width": 2})
    assert s.successful, s.failures
    flow = os.path.join(os.path.dirname(os.path.dirname(__file__)), "flows", "pypi_flow.py")
    env = {"RAYFLOW_HOME": str(tmp_path / "home")}
    spin_ds = os.path.join(datastore, "_spin")

    def spin(pathspec: str, attr: str):
        proc = cli("spin", flow, pathspec, env=env, check=0)
        done = [ln for ln in proc.stderr.splitlines() if ln.startswith("Spun ")]
        spun = done[0].split(" again as ")[1].split(".")[0]
        return proc, getattr(Run("/".join(spun.split("/")[:2]), datastore=spin_ds)[
            spun.split("/")[2]][spun.split("/")[3]].data, attr)

    first, seen_pinned = spin(f"{s.run_id}/pinned", "at_pinned")
    assert seen_pinned[:2] == (PINNED, PINNED), first.stderr
    assert "installing step 'pinned'" in first.stderr
    split = Run(s.pathspec, datastore=datastore)["each"].tasks()
    task_id = next(iter(split)).id
    second, seen_each = spin(f"{s.run_id}/each/{task_id}", "at_each")
    assert seen_each[:2] == (PINNED, PINNED), second.stderr
    assert "installing" not in second.stderr  # the same requirements: built once
    _, seen_plain = spin(f"{s.run_id}/plain", "at_plain")
    assert seen_plain[:2] == (VENV_VERSION, VENV_VERSION)
