"""Every process a run starts ends with it, even when its driver is killed.

An embedded Ray is a set of processes the driver starts (the GCS, the raylet, workers, the
dashboard agent, the log monitor). When the driver exits normally, `ray.shutdown()` ends them;
when it is killed (SIGKILL, the OOM killer), nothing in it runs, and they linger as orphans.

So before starting an embedded Ray, the driver starts this small watcher in a session of its
own: `python -m rayflow.runtime.reaper <driver pid>`. Once a second it notes the driver's
descendants (pid and start time, so a reused pid is never mistaken for one of them). When the
driver is gone, it ends those it noted that are still alive, by pid: SIGTERM, then SIGKILL for
any left after a grace period. Then it exits. It never touches a process it did not see
descend from the driver (or from one of those, when the driver is gone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 1.0
GRACE_S = 5.0


def start(driver_pid: int | None = None) -> subprocess.Popen | None:
    """Start the watcher for this process (or `driver_pid`); None if it cannot start (the
    run goes on: the watcher is a safety net, not a requirement)."""
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "rayflow.runtime.reaper", str(driver_pid or os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
    except OSError:
        return None


def watch(driver_pid: int) -> None:
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    seen: dict[int, float] = {}
    while driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE:
        try:
            for child in driver.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        time.sleep(POLL_S)
    _end(seen)


def _end(seen: dict[int, float]) -> None:
    import psutil

    # What the noted processes started since the last look (in the second before the driver
    # died, say: Ray's agents, started by the raylet) descends from them still: note it too.
    for pid, started in list(seen.items()):
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) < 1e-3:
                for child in proc.children(recursive=True):
                    if child.pid != os.getpid():
                        seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            continue
    alive = []
    for pid, started in seen.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) < 1e-3:  # the very process we saw
                proc.terminate()
                alive.append(proc)
        except psutil.Error:
            continue
    _, still = psutil.wait_procs(alive, timeout=GRACE_S)
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
