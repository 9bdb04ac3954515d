"""The warm local Ray's state is this user's alone: a folder of mode 0700, a state file that
is used only when this user owns it and no one else may write it, a keeper process of this
user's (issue 30, item 4). No Ray is started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rayflow.exceptions import RayflowException
from rayflow.runtime import warm

root_only = pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
OTHER_UID = 65534  # nobody


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("RAYFLOW_HOME", str(folder))
    return folder


@pytest.fixture
def fake_keeper():
    """A process whose command line names the keeper's module (what `current` checks)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "rayflow.runtime.warm"])
    _wait_for_cmdline(proc.pid)
    yield proc.pid
    proc.kill()
    proc.wait()


def _wait_for_cmdline(pid, timeout=30.0):
    """Until the new process shows its own command line (not yet its parent's)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"rayflow.runtime.warm" in fh.read():
                return
        time.sleep(0.05)


def _write_state(home, pid):
    warm.private_home()
    path = home / warm.STATE_FILE
    path.write_text(json.dumps({"pid": pid, "address": "127.0.0.1:1", "started_at": 0,
                                "idle_timeout_s": 60, "token": "t"}))
    path.chmod(0o600)
    return path


def test_the_state_folder_is_made_private(home):
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    assert warm.private_home() == str(home)
    assert oct(home.stat().st_mode & 0o777) == "0o700"


def test_a_state_file_of_this_user_names_the_warm_ray(home, fake_keeper):
    _write_state(home, fake_keeper)
    local = warm.current()
    assert local is not None and local.pid == fake_keeper and local.token == "t"


def test_a_state_file_others_may_write_is_not_used(home, fake_keeper):
    path = _write_state(home, fake_keeper)
    path.chmod(0o666)
    assert warm.current() is None


@root_only
def test_another_users_state_file_is_not_used(home, fake_keeper):
    path = _write_state(home, fake_keeper)
    os.chown(path, OTHER_UID, OTHER_UID)
    assert warm.current() is None


@root_only
def test_another_users_keeper_is_not_joined(home):
    proc = subprocess.Popen([sys.executable, "-c", "import os, time; os.setuid(65534); "
                             "time.sleep(120)", "rayflow.runtime.warm"])
    try:
        import time

        deadline = time.time() + 30
        while os.stat(f"/proc/{proc.pid}").st_uid != OTHER_UID and time.time() < deadline:
            time.sleep(0.05)
        _wait_for_cmdline(proc.pid)
        _write_state(home, proc.pid)
        assert warm.current() is None
    finally:
        proc.kill()
        proc.wait()


@root_only
def test_a_home_of_another_user_is_refused(home):
    home.mkdir()
    os.chown(home, OTHER_UID, OTHER_UID)
    with pytest.raises(RayflowException, match="belongs to another user"):
        warm.private_home()


def test_a_warm_ray_of_another_python_or_rayflow_is_not_joined(home, fake_keeper, monkeypatch):
    from rayflow.runtime import ray_session

    monkeypatch.delenv("RAYFLOW_NO_WARM_RAY", raising=False)
    path = _write_state(home, fake_keeper)
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "runtime": "/other/venv/bin/python /other/rayflow"}))
    local = warm.current()
    assert local is not None and not local.serves_this_runtime()
    said = []
    assert ray_session._warm_to_join(None, None, True, said.append) is None
    assert "runs another Python or rayflow" in said[0], said
    path.write_text(json.dumps({**state, "runtime": warm.this_runtime()}))
    assert warm.current().serves_this_runtime()
    assert ray_session._warm_to_join(None, None, True, said.append).pid == fake_keeper
