"""The warm local Ray: started by the first run on a machine (or by `rayflow up`), joined by
the runs after it, ended by `rayflow down` or after an idle time-out.

Starting Ray costs a run 5 to 15 s on a laptop. So, as Gradle's daemon does, a run that finds
no Ray of this user's starts a small keeper process, in a session of its own, which starts a
local Ray (`ray.init(address="local")`, on 127.0.0.1) and writes a state file: its pid, the
Ray address, its auth token, when it started. The run, and every later run with no
`--address` and no RAY_ADDRESS, joins that Ray (`run --no-warm` or RAYFLOW_NO_WARM_RAY=1: an
embedded Ray instead). While a run is on it, it keeps a marker file named after its pid; the
keeper also counts the other drivers its Ray has (a plain Ray script joining it). After
RAYFLOW_WARM_IDLE_S seconds (default 15 minutes; `rayflow up --idle-timeout`) with neither,
the keeper shuts its Ray down and exits; `rayflow down` ends it at once by its pid (SIGTERM:
it shuts Ray down itself). The keeper is watched like an embedded Ray's driver (reaper.py),
so a killed keeper leaves no Ray behind.

The state lives in RAYFLOW_HOME (default ~/.rayflow), a folder of this user's own (mode 0700):
`local-ray.json` (0600), `local-ray.runs/`, `local-ray.lock`. One user's warm Ray is never
joined by another's run: a state file, or a keeper process, owned by another uid is not used,
and its Ray admits only drivers that present its token. It never stops a process it did not
start: only the keeper's own pid, read from its file and checked to be this user's keeper
before it is signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from .. import settings
from ..exceptions import RayflowException

STATE_FILE = "local-ray.json"
TOKEN_FILE = "local-ray.token"  # its auth token alone, for your own Ray code (RAY_AUTH_TOKEN_PATH)
RUNS_DIR = "local-ray.runs"
LOCK_FILE = "local-ray.lock"
POLL_S = 2.0
START_TIMEOUT_S = 120.0


def home() -> str:
    return settings.HOME.get()


def private_home() -> str:
    """RAYFLOW_HOME, made if missing, as a folder of this user's alone (mode 0700). Raises
    when another user owns it: a warm Ray's state is never shared between users."""
    folder = home()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.stat(folder)
    if info.st_uid != os.getuid():
        raise RayflowException(
            f"RAYFLOW_HOME {folder} belongs to another user (uid {info.st_uid}): the warm "
            f"local Ray keeps its state in a folder of your own. Set RAYFLOW_HOME to one, or "
            f"run with --no-warm.")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def _mine(path: str) -> bool:
    """The file is this user's and no one else may write it."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _state_path() -> str:
    return os.path.join(home(), STATE_FILE)


# Environment variables a run does not hand to the workers of a warm local Ray: Ray's own
# (the keeper's Ray has its settings) and the shell's bookkeeping.
_NOT_HANDED_ON = ("RAY_", "PWD", "OLDPWD", "SHLVL", "_")


def driver_env_for_workers() -> dict[str, str]:
    """The driver's environment, for the workers of a Ray that it did not start, as a step
    run by an embedded Ray (or by Metaflow's local runtime) inherits it."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("RAY_") or k in _NOT_HANDED_ON)}


def _digest(value: str) -> str:
    import hashlib

    return hashlib.blake2b(value.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def env_digest(env: dict[str, str]) -> dict[str, str]:
    """Name -> a digest of the value: what the state file keeps of the environment the warm
    Ray's workers start with (values, secrets among them, are not written down)."""
    return {k: _digest(v) for k, v in env.items()}


@dataclass
class WarmRay:
    pid: int
    address: str
    started_at: float
    idle_timeout_s: float
    token: str = ""     # its Ray's auth token: only this user's runs, who can read it, join
    env: dict | None = None  # env_digest of its workers' environment (None: not known)
    runtime: str = ""   # the Python and rayflow its workers run (`this_runtime()`)

    def serves_this_runtime(self) -> bool:
        """Whether its workers run this process's Python and rayflow: a run from another
        virtualenv (another rayflow) must not have its steps run by this one's."""
        return not self.runtime or self.runtime == this_runtime()

    def join_env(self) -> dict[str, str]:
        """The environment a driver joins it with (Ray's token authentication)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token} if self.token else {}

    def env_changes(self, env: dict[str, str]) -> dict[str, str]:
        """The variables of `env` whose values this Ray's workers do not already have."""
        if self.env is None:
            return dict(env)
        return {k: v for k, v in env.items() if self.env.get(k) != _digest(v)}


def this_runtime() -> str:
    """The Python executable and the rayflow package this process runs."""
    import rayflow

    return f"{sys.executable} {os.path.dirname(os.path.abspath(rayflow.__file__))}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_keeper(pid: int) -> bool:
    """The process is alive, this user's, and a keeper (not another process that reused
    the pid)."""
    if not _alive(pid):
        return False
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"rayflow.runtime.warm" in fh.read()
    except OSError:
        return True  # no /proc: trust the pid


def current() -> WarmRay | None:
    """This user's warm Ray, if its keeper is alive."""
    if not _mine(_state_path()):
        return None
    try:
        with open(_state_path()) as fh:
            data = json.load(fh)
        env = data.get("env")
        warm = WarmRay(int(data["pid"]), str(data["address"]), float(data["started_at"]),
                       float(data["idle_timeout_s"]), str(data.get("token", "")),
                       dict(env) if isinstance(env, dict) else None,
                       str(data.get("runtime", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return warm if _is_keeper(warm.pid) else None


# -- the commands --------------------------------------------------------------------------
def up(idle_timeout_s: float | None = None, num_cpus: int | None = None,
       num_gpus: int | None = None) -> tuple[WarmRay, bool]:
    """(this user's warm Ray, whether this call started it). Two calls at once (two runs
    started together) start one: the second waits for the first's."""
    from filelock import FileLock, Timeout

    if idle_timeout_s is None:
        idle_timeout_s = float(settings.WARM_IDLE_S.get())
    running = current()
    if running is not None:
        return running, False
    folder = private_home()
    try:
        with FileLock(os.path.join(folder, LOCK_FILE), timeout=START_TIMEOUT_S):
            running = current()
            if running is not None:
                return running, False
            return _start_keeper(folder, idle_timeout_s, num_cpus, num_gpus), True
    except Timeout:
        raise RayflowException(
            f"Another rayflow process has been starting the warm local Ray for "
            f"{START_TIMEOUT_S:.0f} s ({os.path.join(folder, LOCK_FILE)}); see "
            f"{os.path.join(folder, 'local-ray.log')}, or run with --no-warm.") from None


def _start_keeper(folder: str, idle_timeout_s: float, num_cpus: int | None,
                  num_gpus: int | None) -> WarmRay:
    os.makedirs(os.path.join(folder, RUNS_DIR), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_state_path())
    import secrets

    log_path = os.path.join(folder, "local-ray.log")
    # A token of its own: Ray 2.60 authenticates every process that joins, and a run must
    # join this Ray only with what the state file (readable by this user alone) gives it.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    argv = [sys.executable, "-m", "rayflow.runtime.warm", "--idle-timeout", str(idle_timeout_s)]
    if num_cpus is not None:
        argv += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        argv += ["--num-gpus", str(num_gpus)]
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        warm = current()
        if warm is not None and warm.pid == proc.pid:
            return warm
        if proc.poll() is not None:
            raise RayflowException(f"The local Ray did not start (exit {proc.returncode}); "
                                   f"see {log_path}.")
        time.sleep(0.1)
    proc.terminate()
    raise RayflowException(f"The local Ray did not start within {START_TIMEOUT_S:.0f} s; "
                           f"see {log_path}.")


def down(timeout_s: float = 30.0) -> WarmRay | None:
    """Stop the warm Ray; None when there was none."""
    warm = current()
    if warm is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(_state_path())
        return None
    os.kill(warm.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(warm.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(warm.pid):
        os.kill(warm.pid, signal.SIGKILL)  # its reaper ends the Ray it started
    for name in (STATE_FILE, TOKEN_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(home(), name))
    return warm


def user_env(warm: WarmRay) -> dict[str, str]:
    """The environment in which a plain Ray script joins this Ray with
    `ray.init(address="auto")` (or its address): Ray's own variables, nothing of rayflow's.
    RAY_ADDRESS names it; its token is written, readable by this user alone, to a file of its
    own that RAY_AUTH_TOKEN_PATH names (Ray's token authentication); and Ray's single-machine
    mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), as the warm Ray serves 127.0.0.1 alone:
    without it, Ray rewrites the address 127.0.0.1 to the machine's own and waits there."""
    env = {"RAY_ADDRESS": warm.address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    if warm.token:
        path = os.path.join(home(), TOKEN_FILE)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(warm.token)
        os.replace(tmp, path)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=path)
    return env


def mark_in_use() -> None:
    """Mark the warm Ray as used by this process until it exits (the keeper also drops the
    marker of a process that is gone)."""
    import atexit

    folder = os.path.join(home(), RUNS_DIR)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    marker = os.path.join(folder, str(os.getpid()))
    with open(marker, "w") as fh:
        fh.write(str(time.time()))

    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(marker)

    atexit.register(remove)


def _busy() -> bool:
    folder = os.path.join(home(), RUNS_DIR)
    busy = False
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.isdigit() and _alive(int(name)):
            busy = True
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
    return busy


# -- the keeper ----------------------------------------------------------------------------
def _other_drivers(ray) -> bool:
    """Whether a driver other than the keeper is connected to its Ray (a plain Ray script
    that joined it, or a run between `ray.init` and its marker)."""
    try:
        from ray._private import state

        jobs = state.jobs()
    except Exception:  # another Ray layout, or its GCS is going away: markers only
        return False
    me = os.getpid()
    return any(job.get("IsDead") is False and int(job.get("DriverPid") or 0) != me
               for job in jobs)


def keep(idle_timeout_s: float, num_cpus: int | None, num_gpus: int | None) -> None:
    import logging

    # Ray's single-machine mode, read when ray is imported: its servers on 127.0.0.1 only.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from . import reaper

    reaper.start()
    kwargs = {k: v for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)) if v is not None}
    ctx = ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR,
                   **kwargs)
    address = ctx.address_info["gcs_address"]
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    # Its workers start with the environment its Ray was started in, this process's.
    state = {"pid": os.getpid(), "address": address, "started_at": time.time(),
             "idle_timeout_s": idle_timeout_s, "token": os.environ.get("RAY_AUTH_TOKEN", ""),
             "env": env_digest(driver_env_for_workers()), "runtime": this_runtime()}
    tmp = _state_path() + f".{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, _state_path())
    last_used = time.monotonic()
    try:
        while not stopping["now"]:
            if _busy() or _other_drivers(ray):
                last_used = time.monotonic()
            elif time.monotonic() - last_used > idle_timeout_s:
                break
            time.sleep(POLL_S)
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            with open(_state_path()) as fh:
                mine = json.load(fh).get("pid") == os.getpid()
            if mine:
                os.remove(_state_path())
        ray.shutdown()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rayflow.runtime.warm")
    parser.add_argument("--idle-timeout", type=float, default=None)
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--num-gpus", type=int, default=None)
    args = parser.parse_args()
    idle = args.idle_timeout if args.idle_timeout is not None else settings.WARM_IDLE_S.get()
    keep(float(idle), args.num_cpus, args.num_gpus)


if __name__ == "__main__":
    main()
