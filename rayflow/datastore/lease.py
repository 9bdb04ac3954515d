"""Who drives a run: what the driver writes in its heartbeat, and how a reader tells that the
driver is gone without waiting for the heartbeat's lease to lapse.

A driver that stops on a datastore failure cannot write its run's final status (the datastore
is what failed); its last heartbeat still looks fresh for up to a lease. The heartbeat names
the driver: its host, its pid, when that process started and its pid namespace. A reader on
the same host, in the same pid namespace, sees at once whether that process is still there;
elsewhere the lease decides, as before.

It must never read or write storage (flow_datastore.py does), and never import ray.
"""

from __future__ import annotations

import os
import socket


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def driver_identity() -> dict:
    """This process, as its heartbeat names it."""
    import psutil

    try:
        created = psutil.Process().create_time()
    except psutil.Error:
        created = 0.0
    return {"pid": os.getpid(), "host": socket.gethostname(), "created": created,
            "pidns": _pid_namespace()}


def driver_gone(lease: dict) -> bool:
    """True only when `lease` names a process of this host and pid namespace that has ended
    (or whose pid another process now has); False when alive or when this reader cannot
    tell (another host, another container, an older heartbeat)."""
    import psutil

    try:
        pid = int(lease["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if lease.get("host") != socket.gethostname() or not lease.get("pidns") or \
            lease.get("pidns") != _pid_namespace():
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        created = float(lease.get("created") or 0.0)
        return bool(created) and abs(proc.create_time() - created) > 1.0
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # e.g. not allowed to look: cannot tell
        return False


def describe(lease: dict) -> str:
    """"pid 123 on host-a", for messages."""
    return f"pid {lease.get('pid', '?')} on {lease.get('host') or 'an unknown host'}"
