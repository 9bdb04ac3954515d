"""A datastore that cannot be written is one clear message before anything starts; files the
datastore writes follow the process umask."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from rayflow.datastore import get_storage
from rayflow.exceptions import DataStoreError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELLO = os.path.join(ROOT, "examples", "hello.py")


def rayflow(*args, cwd, **extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_datastore_under_a_file_is_one_message_before_ray_starts(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    # Ray makes its session folder under RAY_TMPDIR as it starts: none must appear. (A short
    # path: Ray's socket paths under it must fit in 107 characters.)
    ray_tmp = tempfile.mkdtemp(prefix="rf-")
    try:
        proc = rayflow("run", HELLO, "--datastore", str(tmp_path / "afile" / "ds"),
                       cwd=tmp_path, RAY_TMPDIR=ray_tmp)
        assert not os.listdir(ray_tmp), "Ray was started before the datastore was checked"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 1
    err = proc.stderr
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Datastore error: Cannot write")
    assert str(tmp_path / "afile" / "ds") in last and "A file stands where" in last


@pytest.mark.parametrize("code, hint", [
    ("ENOSPC", "The disk is full"), ("EDQUOT", "quota is used up"),
    ("EACCES", "You may not write there"), ("EROFS", "The file system is read-only"),
])
def test_local_disk_errors_are_datastore_errors(tmp_path, monkeypatch, code, hint):
    """The disk's refusals as the kernel reports them (root, who runs CI, is never refused
    by permissions, so the errno is injected where the write starts)."""
    import errno

    storage = get_storage(str(tmp_path / "ds"))

    def refuse(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr("rayflow.datastore.local.tempfile.mkstemp", refuse)
    with pytest.raises(DataStoreError, match=hint) as err:
        storage.put("a/b", b"x")
    assert str(tmp_path / "ds") in str(err.value) and "write a/b" in str(err.value)


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        from rayflow.datastore import local

        storage = get_storage(str(tmp_path / "ds"))
        storage.put("f/x.json", b"{}")
        mode = stat.S_IMODE(os.stat(tmp_path / "ds" / "f" / "x.json").st_mode)
        assert mode == local._FILE_MODE == 0o644
    finally:
        os.umask(old)


def test_a_full_disk_is_one_message_before_ray_starts(tmp_path):
    """A real full file system: a 64 KiB tmpfs filled up, mounted in a mount namespace of the
    test's own (no root needed where user namespaces are allowed). An empty file can still be
    made there; the run must find out that bytes cannot be written before Ray starts."""
    import shlex

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small file system")
    disk = tmp_path / "disk"
    disk.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rf-")
    mount = (f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(disk))} && "
             f"(head -c 1M /dev/zero > {shlex.quote(str(disk / 'filler'))} 2>/dev/null; "
             f": > {shlex.quote(str(disk / 'empty-files-still-fit'))}) && "
             f"exec {shlex.quote(sys.executable)} -m rayflow_cli.main run "
             f"{shlex.quote(HELLO)} --datastore {shlex.quote(str(disk / 'ds'))}")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    env.update(RAY_TMPDIR=ray_tmp, RAYFLOW_NO_WARM_RAY="1")
    try:
        proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", mount],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        if "unshare:" in proc.stderr or "mount:" in proc.stderr:
            pytest.skip(f"cannot mount a small file system here: {proc.stderr.strip()}")
        assert not os.listdir(ray_tmp), "Ray was started before the full disk was found"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert err.count("Datastore error") == 1, err
    assert last.startswith("Datastore error: Cannot write") and "The disk is full" in last, err
    assert str(disk / "ds") in last
