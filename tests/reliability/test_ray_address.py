"""`--address` to a Ray that is not there is one message within seconds, before any Ray starts
here; the 127.0.0.1 address `rayflow up` reports can be joined as given."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELLO = os.path.join(ROOT, "examples", "hello.py")


def rayflow(*args, cwd, home=None, timeout=180, **extra_env):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                        "RAYFLOW_NO_WARM_RAY")}
    env["RAYFLOW_HOME"] = str(home or os.path.join(cwd, "home"))
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("form", ["{port}", "ray://{port}", "localhost"])
def test_an_address_where_no_ray_listens_is_one_message_within_seconds(tmp_path, form):
    port = free_port()
    address = {"{port}": f"127.0.0.1:{port}", "ray://{port}": f"ray://127.0.0.1:{port}",
               "localhost": f"localhost:{port}"}[form]
    ray_tmp = tempfile.mkdtemp(prefix="rf-")
    try:
        t0 = time.monotonic()
        proc = rayflow("run", HELLO, "--address", address, "--datastore",
                       str(tmp_path / "ds"), cwd=tmp_path, RAY_TMPDIR=ray_tmp, timeout=120)
        took = time.monotonic() - t0
        assert not os.listdir(ray_tmp), "a Ray was started or joined"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Cannot join Ray: No Ray"), proc.stderr
    assert f"answers at {address} (nothing listens on port {port} there)" in last
    assert took < 30, f"took {took:.0f} s"  # the import of the flow and Python included


def test_a_port_that_accepts_but_is_not_ray_is_one_message_within_the_timeout(tmp_path):
    """A server that accepts the connection and then says nothing (Ray's own client would
    wait for it for many minutes): given up on after RAYFLOW_CONNECT_TIMEOUT_S."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # kept open, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        proc = rayflow("run", HELLO, "--address", address, "--datastore",
                       str(tmp_path / "ds"), cwd=tmp_path, RAYFLOW_CONNECT_TIMEOUT_S="2",
                       timeout=120)
        took = time.monotonic() - t0
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Cannot join Ray: No Ray cluster answers at {address} (it "
                           f"accepts connections but does not answer as Ray's servers do)")
    assert took < 25, f"took {took:.0f} s"


def test_a_bad_address_is_one_message(tmp_path):
    proc = rayflow("run", HELLO, "--address", "http://head:8265", "--datastore",
                   str(tmp_path / "ds"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "is not a Ray address: give host:port" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.integration
def test_the_address_rayflow_up_reports_can_be_joined_as_given(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    up = rayflow("up", "--idle-timeout", "300", cwd=tmp_path, home=home)
    assert up.returncode == 0, up.stderr
    address = up.stdout.split("local Ray at ", 1)[1].split(" ", 1)[0]
    assert address.startswith("127.0.0.1:")
    try:
        proc = rayflow("run", HELLO, "--address", address, "--datastore",
                       str(tmp_path / "ds"), cwd=tmp_path, home=home)
        assert proc.returncode == 0, proc.stderr
        assert "Done: HelloFlow/" in proc.stderr
    finally:
        down = rayflow("down", cwd=tmp_path, home=home)
        assert down.returncode == 0, down.stderr
