"""The command line against a cluster made by `ray start`, as a user would make one: two
`ray start --block` processes on this machine (a head and a worker, each with its own ports),
then `rayflow run --address` (and RAY_ADDRESS) with the S3 datastore.

Every process of that cluster and the rayflow driver share one RAY_AUTH_MODE (token) and one
token made for this test, so nothing else can join it or submit to it. The nodes are stopped by
signalling their own pids, never with the ray command that stops every Ray on the machine.

Everything stays on 127.0.0.1: the head and the drivers run in Ray's single-machine mode, and
the worker, which needs the multi-node switch, is started through tests/multinode/loopback_ray.py
so that Ray keeps the loopback address it is given instead of swapping in the machine's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "tests", "multinode", "flows", "mn_artifact_flow.py")
HOST = "127.0.0.1"
LOOPBACK_RAY = os.path.join(ROOT, "tests", "multinode", "loopback_ray.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def ray_executable() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    return beside if os.path.exists(beside) else (shutil.which("ray") or "ray")


class RayStartNode:
    """One `ray start --block` process, and what it spawned, stopped by pid."""

    def __init__(self, args: list[str], env: dict, log_path: str,
                 launcher: list[str] | None = None):
        self.log_path = log_path
        with open(log_path, "w") as log:
            command = [*(launcher or [ray_executable()]), "start", "--block", *args]
            self.proc = subprocess.Popen(command, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.descendants: set[int] = set()

    def remember_descendants(self) -> None:
        import psutil

        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        self.descendants |= {k.pid for k in kids}

    def log(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()[-4000:]

    def terminate(self) -> None:
        """SIGTERM `ray start`: it drains the node, then ends the processes it started."""
        self.remember_descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 40.0) -> None:
        """Wait for `ray start` to exit, then make sure nothing it started is left, killing
        leftovers by their own pids."""
        import psutil

        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        deadline = time.time() + 15
        for pid in sorted(self.descendants):
            try:
                child = psutil.Process(pid)
                child.wait(max(0.1, deadline - time.time()))
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                child.kill()


WAIT_FOR_NODES = """
import sys, time, ray
count, deadline = int(sys.argv[2]), time.time() + float(sys.argv[3])
ray.init(address=sys.argv[1], log_to_driver=False)
while time.time() < deadline:
    alive = sum(1 for n in ray.nodes() if n["Alive"])
    if alive >= count:
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"{alive} of {count} nodes alive")
"""


def wait_for_nodes(env: dict, address: str, count: int, timeout: float = 90.0) -> None:
    """Until the cluster has `count` alive nodes. Asked from a separate process, so that this
    pytest process (which may hold the suite's own Ray) stays off that cluster."""
    try:
        proc = subprocess.run([sys.executable, "-c", WAIT_FOR_NODES, address, str(count),
                               str(timeout)], env=env, check=False, capture_output=True,
                              text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"no answer from the cluster at {address}") from exc
    if proc.returncode != 0:
        raise TimeoutError(f"the cluster at {address} did not reach {count} nodes: "
                           f"{proc.stderr[-1500:]}")


@pytest.fixture(scope="module")
def ray_start_cluster(s3_server, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("rs"))  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    env.update(s3_server.env())
    # Head and drivers keep every Ray server on 127.0.0.1 (Ray's single-machine mode).
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                "RAY_TMPDIR": tmp,
                "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))})
    port = free_port()
    address = f"{HOST}:{port}"
    common = [f"--node-ip-address={HOST}", "--num-cpus=1", f"--temp-dir={tmp}/ray"]
    nodes = []
    try:
        nodes.append(RayStartNode(
            ["--head", f"--port={port}", f"--dashboard-agent-listen-port={free_port()}",
             f"--ray-client-server-port={free_port()}", "--include-dashboard=false",
             "--resources", json.dumps({"node_a": 1}), *common],
            env, os.path.join(tmp, "head.log")))
        # The worker needs Ray's multi-node switch on; the wrapper keeps it on 127.0.0.1.
        nodes.append(RayStartNode(
            [f"--address={address}", f"--dashboard-agent-listen-port={free_port()}",
             "--resources", json.dumps({"node_b": 1}), *common],
            {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"},
            os.path.join(tmp, "worker.log"), launcher=[sys.executable, LOOPBACK_RAY]))
        try:
            wait_for_nodes(env, address, 2)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\nhead:\n{nodes[0].log()}\nworker:\n{nodes[1].log()}")
        for node in nodes:
            node.remember_descendants()
        yield {"address": address, "env": env, "tmp": tmp, "nodes": nodes}
    finally:
        for node in reversed(nodes):  # both drain at once
            node.terminate()
        for node in reversed(nodes):
            node.wait_stopped()


def rayflow(cluster: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args],
                          env={**cluster["env"], **(env or {})}, cwd=cluster["tmp"],
                          check=False, capture_output=True, text=True, timeout=180)


def test_rayflow_run_with_address_uses_both_nodes(ray_start_cluster, s3_url):
    from rayflow import Run, namespace

    run_id_file = os.path.join(ray_start_cluster["tmp"], "run_id")
    proc = rayflow(ray_start_cluster, "run", FLOW, "--address", ray_start_cluster["address"],
                   "--datastore", s3_url, "--quiet", "--run-id-file", run_id_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(run_id_file) as fh:
        run_id = fh.read().strip()
    namespace(None)
    try:
        run = Run(f"ArtifactAcrossNodesFlow/{run_id}", datastore=s3_url)
        assert run.successful
        start, read = run["start"].task, run["read"].task
        # An array made on the head was read on the worker, through Ray's object transfer.
        assert start.data.made_on != read.data.read_on
        assert read.data.total == sum(range(250_000))
        assert start.metadata_dict["node"] != read.metadata_dict["node"]
        # The flow's own module reached the worker through runtime_env's working_dir.
        assert read.data.helper_square == 49 and "runtime_resources" in read.data.helper_dir
    finally:
        from rayflow import default_namespace

        default_namespace()


def test_ray_address_env_and_a_local_datastore_is_refused(ray_start_cluster):
    """RAY_ADDRESS alone joins the cluster; a local datastore on two nodes is refused before
    any task runs, with one line that says to use s3://, and exit status 1."""
    local = os.path.join(ray_start_cluster["tmp"], "local-ds")
    proc = rayflow(ray_start_cluster, "run", FLOW, "--datastore", local, "--quiet",
                   env={"RAY_ADDRESS": ray_start_cluster["address"]})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "s3://" in proc.stderr and "2 nodes" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    written = [os.path.join(d, f) for d, _, files in os.walk(local) for f in files]
    assert [f for f in written if not f.endswith("_run.json")] == []  # no task ran
    for path in (f for f in written if f.endswith("_run.json")):
        with open(path) as fh:
            assert json.load(fh)["status"] != "running"  # no run left looking alive
