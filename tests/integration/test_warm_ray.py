"""The warm local Ray: the first run (or `rayflow up`) starts it, later runs join it,
`rayflow down` ends it (by its pid, with every process of that Ray); an idle one ends itself.
Every test here uses a RAYFLOW_HOME of its own and ends what it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELLO = os.path.join(ROOT, "examples", "hello.py")


def _env(home):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                        "RAYFLOW_NO_WARM_RAY")}
    env["RAYFLOW_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return env


def rayflow(home, *args, timeout=180, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args],
                          env={**_env(home), **(env or {})}, cwd=str(cwd or home),
                          capture_output=True, text=True, timeout=timeout)


ENV_FLOW = """
import os
from rayflow import FlowSpec, step


class EnvFlow(FlowSpec):
    @step
    def start(self):
        self.seen = os.environ.get("WARM_TEST_VALUE")
        self.cwd = os.getcwd()
        self.next(self.end)

    @step
    def end(self):
        pass
"""


# Top-level code that writes relative to the working directory, as Metaflow's IncludeFile
# test does: every process that imports the flow (a task's, a foreach's slicing) must do it
# in the run's folder, never in the folder the warm Ray was started from.
IMPORT_WRITES_FLOW = """
import os
from rayflow import FlowSpec, step

with open("imported-here.txt", "a") as f:
    f.write(str(os.getpid()) + "\\n")


class ImportWritesFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _gone(pids, timeout=30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and
                psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.2)
    return False


def test_up_run_down(tmp_path):
    home = tmp_path / "home"
    up = rayflow(home, "up", "--idle-timeout", "600")
    assert up.returncode == 0 and "Started a local Ray at 127.0.0.1:" in up.stdout, up.stderr
    state = json.loads((home / "local-ray.json").read_text())
    assert oct((home / "local-ray.json").stat().st_mode & 0o777) == "0o600"
    keeper = psutil.Process(state["pid"])
    try:
        again = rayflow(home, "up")
        assert again.returncode == 0 and "Already up:" in again.stdout
        ds = str(tmp_path / "ds")
        for _ in range(2):
            run = rayflow(home, "run", HELLO, "--datastore", ds)
            assert run.returncode == 0, run.stderr
            assert "Using the warm local Ray at" in run.stderr
            assert "Starting" not in run.stderr
        # The run report names the Ray the run used: the warm one, at its address.
        report = run.stderr.rsplit("Report: ", 1)[1].strip()
        assert f"the warm local Ray at {state['address']}" in open(report).read()
        # A step on the warm Ray sees the environment and the working directory of the
        # `rayflow run` that started it, not the keeper's, as with an embedded Ray.
        flow = tmp_path / "env_flow.py"
        flow.write_text(ENV_FLOW)
        where = tmp_path / "elsewhere"
        where.mkdir()
        # A run whose environment is the keeper's passes none to Ray (its tasks take the
        # workers the warm Ray keeps): it must not see what an earlier run had set either.
        for value in ("first", "second", None, "third"):
            run = rayflow(home, "run", str(flow), "--datastore", ds, cwd=where,
                          env={"WARM_TEST_VALUE": value} if value else {})
            assert run.returncode == 0, run.stderr
            from rayflow import Flow, namespace

            namespace(None)
            data = Flow("EnvFlow", datastore=ds).latest_run["start"].task.data
            assert (data.seen, data.cwd) == (value, str(where))
        flow = tmp_path / "import_writes_flow.py"
        flow.write_text(IMPORT_WRITES_FLOW)
        for _ in range(2):
            run = rayflow(home, "run", str(flow), "--datastore", ds, cwd=where)
            assert run.returncode == 0, run.stderr
        assert (where / "imported-here.txt").exists()
        strays = [str(p) for p in tmp_path.rglob("imported-here.txt") if p.parent != where]
        assert not strays, f"the flow was imported outside the run's folder: {strays}"
        # The state file keeps digests of the keeper's environment, not its values.
        assert os.environ["PATH"] not in (home / "local-ray.json").read_text()
        assert state["env"]["PATH"] and state["env"]["PATH"] != os.environ["PATH"]
        ray_pids = [c.pid for c in keeper.children(recursive=True)]
        assert ray_pids, "the keeper's Ray has processes"
    finally:
        down = rayflow(home, "down")
    assert down.returncode == 0 and "Stopped the local Ray" in down.stdout, down.stderr
    assert _gone([state["pid"], *ray_pids]), "a process of the warm Ray outlived `down`"
    assert not (home / "local-ray.json").exists()
    assert "No warm local Ray" in rayflow(home, "down").stdout


def test_an_idle_warm_ray_ends_itself(tmp_path):
    home = tmp_path / "home"
    up = rayflow(home, "up", "--idle-timeout", "1")
    assert up.returncode == 0, up.stderr
    pid = json.loads((home / "local-ray.json").read_text())["pid"]
    try:
        assert _gone([pid], timeout=60), "an idle warm Ray did not stop"
    finally:
        rayflow(home, "down")


RAY_OWN_LINES = ("Connecting to existing Ray cluster", "Started a local Ray instance")


def test_the_first_run_leaves_a_warm_ray_for_the_next(tmp_path):
    home = tmp_path / "home"
    ds = str(tmp_path / "ds")
    flow = tmp_path / "env_flow.py"
    flow.write_text(ENV_FLOW)
    state_file = home / "local-ray.json"
    pids: list[int] = []
    try:
        first = rayflow(home, "run", str(flow), "--datastore", ds,
                        env={"WARM_TEST_VALUE": "first"})
        assert first.returncode == 0, first.stderr
        assert "Starting a local Ray that later runs reuse" in first.stderr
        assert state_file.exists(), "the first run left no warm Ray behind"
        state = json.loads(state_file.read_text())
        keeper = psutil.Process(state["pid"])
        pids = [keeper.pid, *(c.pid for c in keeper.children(recursive=True))]
        assert oct(home.stat().st_mode & 0o777) == "0o700"
        assert oct(state_file.stat().st_mode & 0o777) == "0o600"
        out = first.stdout + first.stderr
        assert not [line for line in RAY_OWN_LINES if line in out], out
        # The next run joins it; a variable only the first run had (the keeper's workers
        # started with it) is not seen by this one's steps. RAYFLOW_RAY_LOGS=1: Ray's own
        # lines are shown.
        second = rayflow(home, "run", str(flow), "--datastore", ds,
                         env={"RAYFLOW_RAY_LOGS": "1"})
        assert second.returncode == 0, second.stderr
        assert "Using the warm local Ray at" in second.stderr
        assert "Starting" not in second.stderr
        assert "Connecting to existing Ray cluster" in second.stdout + second.stderr
        from rayflow import Flow, namespace

        namespace(None)
        assert Flow("EnvFlow", datastore=ds).latest_run["start"].task.data.seen is None
        # --no-warm: a Ray of the run's own; the warm one is left as it was.
        alone = rayflow(home, "run", str(flow), "--datastore", ds, "--no-warm")
        assert alone.returncode == 0, alone.stderr
        assert "Starting an embedded Ray" in alone.stderr
        assert "Using the warm local Ray" not in alone.stderr
        assert json.loads(state_file.read_text())["pid"] == keeper.pid and keeper.is_running()
    finally:
        down = rayflow(home, "down")
    assert "Stopped the local Ray" in down.stdout, down.stdout + down.stderr
    assert _gone(pids), "a process of the warm Ray outlived `rayflow down`"


BLOB_FLOW = """
from rayflow import FlowSpec, step


class BlobFlow(FlowSpec):
    @step
    def start(self):
        self.big = "x" * 200_000
        self.next(self.end)

    @step
    def end(self):
        print("length", len(self.big))
"""


def test_a_resume_that_clones_every_task_starts_no_ray(tmp_path):
    home = tmp_path / "home"
    ds = tmp_path / "ds"
    flow = tmp_path / "blob_flow.py"
    flow.write_text(BLOB_FLOW)
    rid = tmp_path / "rid"
    origin = rayflow(home, "run", str(flow), "--datastore", str(ds), "--run-id-file",
                     str(rid), env={"RAYFLOW_NO_WARM_RAY": "1"})
    assert origin.returncode == 0, origin.stderr
    assert "Starting an embedded Ray" in origin.stderr
    assert not (home / "local-ray.json").exists(), "RAYFLOW_NO_WARM_RAY=1 left a warm Ray"
    origin_id = rid.read_text()
    resumed = rayflow(home, "resume", str(flow), "--datastore", str(ds), "--origin-run-id",
                      origin_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 cloned" in resumed.stderr, resumed.stderr
    assert "Ray" not in resumed.stderr, resumed.stderr
    assert not (home / "local-ray.json").exists(), "a resume that cloned everything started Ray"
    # An artifact of the origin gone: its task runs again, so this resume joins Ray after all.
    for folder, _, files in os.walk(ds / "BlobFlow" / "data"):
        for name in files:
            os.remove(os.path.join(folder, name))
    try:
        again = rayflow(home, "resume", str(flow), "--datastore", str(ds), "--origin-run-id",
                        origin_id)
        assert again.returncode == 0, again.stderr
        assert "Starting a local Ray" in again.stderr and "cloned" not in again.stderr
        assert "length 200000" in again.stdout + again.stderr
    finally:
        rayflow(home, "down")


PLAIN_RAY = """
import ray

ray.init(address="auto")


@ray.remote
def double(x):
    return 2 * x


print("joined", ray.get_runtime_context().gcs_address, ray.get(double.remote(21)))
"""


def test_a_plain_ray_script_joins_rayflow_ups_ray(tmp_path):
    # Plain Ray code next to a flow: `eval "$(rayflow up --env)"` and ray.init(address="auto"),
    # with Ray's own variables only (no rayflow setting, no token read from rayflow's state).
    home = tmp_path / "home"
    up = rayflow(home, "up", "--idle-timeout", "600")
    assert up.returncode == 0, up.stderr
    assert 'eval "$(rayflow up --env)"' in up.stdout and 'ray.init(address="auto")' in up.stdout
    state = json.loads((home / "local-ray.json").read_text())
    try:
        printed = rayflow(home, "up", "--env")
        assert printed.returncode == 0, printed.stderr
        script = tmp_path / "plain.py"
        script.write_text(PLAIN_RAY)
        shell = f'{printed.stdout.strip()}; exec "{sys.executable}" "{script}"'
        env = {k: v for k, v in _env(home).items() if not k.startswith(("RAYFLOW_", "RAY_"))}
        out = subprocess.run(["bash", "-c", shell], env=env, cwd=str(tmp_path),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"joined {state['address']} 42" in out.stdout, out.stdout
        token_file = home / "local-ray.token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    finally:
        down = rayflow(home, "down")
    assert down.returncode == 0, down.stderr
    assert not (home / "local-ray.token").exists()
