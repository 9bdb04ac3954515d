"""Joining Ray, in the driver: `connect` returns the `RaySession` the run goes on with.

Which Ray a run uses: the cluster at `--address` (or RAY_ADDRESS); else this user's warm local
Ray (`warm.py`), started now when there is none, so that the runs after this one find Ray
running (as Gradle's daemon); with `--no-warm` (or RAYFLOW_NO_WARM_RAY=1) an embedded Ray of
its own instead, ended with it. What the run loop needs to know about the Ray it joined (the
dashboard's URL for the run record, the working directory a warm Ray's workers take) comes
back in the `RaySession` value.

Ray's own log lines (starting, "Connecting to existing Ray cluster", its warnings) stay off
the console unless RAYFLOW_RAY_LOGS=1; the steps' output is forwarded as printed.

Ray reads some settings once, when it is imported; a Ray imported before they were set is told
through the values its private modules keep (`_single_machine_mode`, `_no_log_dedup`,
`_no_worker_log_prefix`). Those patches live here and nowhere else.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from .. import settings
from ..exceptions import RayflowException
from . import address as ray_address


@dataclass(frozen=True)
class RaySession:
    """The Ray a run joined.

    - `kind`: "cluster" (an address), "warm" (`rayflow up`'s), "embedded" (started here),
      "existing" (a Ray this process was already connected to by someone else), or "none"
      (no Ray: the inline executor);
    - `address`: where the cluster or the warm Ray answers;
    - `dashboard_url`: the cluster's dashboard, when the Ray joined serves one;
    - `driver_cwd`: the run's working directory, when it joined a warm local Ray (whose
      workers were not started from this run: they take it, see `RunContext.driver_cwd`);
    - `env_unset`: the variables that Ray's workers have and this run's environment lacks."""

    kind: str = "none"
    dashboard_url: str | None = None
    driver_cwd: str | None = None
    env_unset: tuple[str, ...] = ()
    address: str | None = None


# The session this process joined: Ray's connection is the process's, and a second run in
# the same process goes on on it.
_joined: RaySession | None = None


def connect(address: str | None, flow_file: str, say=None, warm: bool = True) -> RaySession:
    """Join the cluster at `address` (or RAY_ADDRESS), else this user's warm local Ray
    (started now if there is none; `warm=False` or RAYFLOW_NO_WARM_RAY=1: no), else start
    an embedded Ray. `say` tells the user which."""
    global _joined
    address = address or os.environ.get("RAY_ADDRESS") or None
    say = say or (lambda text: None)
    _wait_for_early_join(say)
    ray_module = sys.modules.get("ray")
    if ray_module is not None and ray_module.is_initialized():
        return _joined or RaySession("existing")  # this process is on a Ray already
    # An address is checked first: nothing (or no Ray) answering there is one message now.
    target = ray_address.check(address) if address else None
    local, single = _prepare_environment(address, target, warm, say)
    if local is not None:
        address = None  # the warm Ray, named by its address: joined as the warm Ray is
    # Ray reads these settings when it is imported (or first connects); one imported
    # earlier is told through the values it keeps.
    import ray

    _no_worker_log_prefix()
    if single:
        _single_machine_mode()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    _no_log_dedup()
    if local is not None:
        _joined = _join_warm(ray, local, say)
    elif address:
        _joined = _join_cluster(ray, target or address, flow_file, say)
    else:
        _joined = _start_embedded(ray, say)
    return _joined


# A join begun early (`join_early`): its thread, what it would have said, how it failed.
_early: dict = {}


def join_early(address: str | None, flow_file: str, warm: bool = True) -> None:
    """Join this user's warm Ray, when one is running and the run would join it, in a thread
    while the driver goes on loading the flow, and have Ray start a worker for the run at
    once: Ray starts a run's workers only when it asks for one (a second or more), and this
    way they come up while the driver is still busy. `connect` waits for the thread."""
    from . import warm as warm_ray

    if address or os.environ.get("RAY_ADDRESS") or not warm or settings.NO_WARM_RAY.get():
        return
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    local = warm_ray.current()
    if local is None or not local.serves_this_runtime():
        return  # starting one waits until the flow is known to be good
    said: list[str] = []

    def join() -> None:
        try:
            connect(None, flow_file, say=said.append)
            import ray

            ray.remote(_import_task_code).options(max_retries=0, name="rayflow-warm").remote()
        except BaseException as exc:  # noqa: BLE001 - raised again by `connect`
            _early["error"] = exc

    thread = threading.Thread(target=join, name="rayflow-join-early", daemon=True)
    _early.update(thread=thread, said=said)
    thread.start()


def _import_task_code() -> None:
    import rayflow.runtime.worker  # noqa: F401 - what every task of the run imports first


def _wait_for_early_join(say) -> None:
    thread = _early.get("thread")
    if thread is None or thread is threading.current_thread():
        return
    thread.join()
    _early.pop("thread", None)
    for line in _early.pop("said", []):
        say(line)
    error = _early.pop("error", None)
    if error is not None and "ray" in sys.modules and sys.modules["ray"].is_initialized():
        raise error
    # Not joined (the warm Ray ended meanwhile, say): the run joins as if it had not tried.


def _prepare_environment(address: str | None, target, warm: bool, say):
    """The environment Ray must find when it is imported: (the warm local Ray to join, if
    any, whether Ray's single-machine mode applies)."""
    # Task output already carries rayflow's "[run/step/task] " prefix: Ray's own "(name pid=...)"
    # prefix, coloured even when the output is not a terminal, would double it.
    os.environ.setdefault("RAY_DISABLE_WORKER_LOG_PREFIX", "1")
    local = _warm_to_join(address, target, warm, say)
    single = local is not None or not address or (
        target is not None and ray_address.serves_loopback_only(target))
    if single:
        # A warm or an embedded Ray, or one found only on loopback, serves this machine
        # alone: Ray's single-machine mode (servers and the driver's address on 127.0.0.1).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if local is not None:
        os.environ.update(local.join_env())  # its token, before Ray reads one
    return local, single


def _warm_to_join(address: str | None, target, warm_allowed: bool, say):
    """The warm local Ray: with no address (started now when there is none), or when the
    address is its own (`127.0.0.1:PORT`, as `rayflow up` reports it: Ray would rewrite it
    and miss it)."""
    from . import warm

    if target is not None:
        if not target.loopback:
            return None
        local = warm.current()
        port = local.address.rpartition(":")[2] if local is not None else None
        return local if port == str(target.port) else None
    if address or not warm_allowed or settings.NO_WARM_RAY.get():
        return None
    local = warm.current()
    if local is not None and not local.serves_this_runtime():
        say(f"The warm local Ray (keeper pid {local.pid}) runs another Python or rayflow "
            f"({local.runtime}); this run starts an embedded Ray. `rayflow down` ends that "
            f"one, and the next run starts one of this rayflow.")
        return None
    if local is not None:
        return local
    idle = float(settings.WARM_IDLE_S.get())
    say(f"Starting a local Ray that later runs reuse (it ends after {_minutes(idle)} "
        f"without a run, or with `rayflow down`; --no-warm: a Ray for this run alone)")
    try:
        local, _ = warm.up(idle)
    except RayflowException as exc:  # the run goes on, on a Ray of its own
        say(f"{exc} This run starts an embedded Ray instead.")
        return None
    return local


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _ray_logging_level() -> int:
    """Ray's own INFO lines ("Connecting to existing Ray cluster", "Started a local Ray
    instance") are shown only with RAYFLOW_RAY_LOGS=1."""
    import logging

    return logging.INFO if settings.RAY_LOGS.get() else logging.ERROR


def _join_warm(ray, local, say) -> RaySession:
    from . import warm

    _forget_cached_auth_token()
    # The steps see this run's environment: what differs from the environment the warm
    # Ray's workers start with goes in the job's runtime_env. With none to pass, the run's
    # first tasks take workers the warm Ray has already started (a runtime_env of its
    # own makes Ray start new ones for the run: about 0.4 s of a run of hello.py).
    env = warm.driver_env_for_workers()
    changed = local.env_changes(env)
    # What the warm Ray's workers have and this run has not: removed while its tasks run.
    unset = tuple(sorted(set(local.env or ()) - set(env)))
    try:
        # The same machine and files: the flow is imported from where it is, no upload.
        ray.init(address=local.address, log_to_driver=True,
                 logging_level=_ray_logging_level(),
                 runtime_env={"env_vars": changed} if changed else None)
        session = RaySession("warm", driver_cwd=os.getcwd(), env_unset=unset,
                             address=local.address)
    except (ConnectionError, RuntimeError) as exc:
        raise RayflowException(
            f"The warm local Ray ({local.address}, keeper pid {local.pid}) did not answer: "
            f"{exc}. End it with `rayflow down` (the next run starts a new one), or run "
            "without it: --no-warm.") from None
    warm.mark_in_use()
    say(f"Using the warm local Ray at {local.address}")
    return session


def _join_cluster(ray, target, flow_file: str, say) -> RaySession:
    """ray.init at a cluster's address (checked to answer), the flow's folder shipped."""
    address = target.address if isinstance(target, ray_address.RayTarget) else target
    say(f"Joining the Ray cluster at {address}")
    folder = os.path.dirname(os.path.abspath(flow_file))
    from ..plugins.secrets.providers import secret_files_under

    # The files @secrets read on the driver stay on it: their values reach the steps through
    # the run's context, never as files on every node.
    runtime_env = {"working_dir": folder,
                   "excludes": [".rayflow/", ".venv/", ".git/", "__pycache__/",
                                *secret_files_under(folder)]}
    try:
        info = ray.init(address=address, runtime_env=runtime_env, log_to_driver=True,
                        logging_level=_ray_logging_level())
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        raise ray_address.join_failed(target, exc) from None
    dashboard = getattr(info, "dashboard_url", None)
    if dashboard and "://" not in dashboard:
        dashboard = f"http://{dashboard}"
    return RaySession("cluster", dashboard_url=dashboard, address=address)


def _start_embedded(ray, say) -> RaySession:
    # An embedded Ray serves this process alone, and its start-up chatter stays off the
    # console. address="local": always a fresh Ray of our own, never a cluster that
    # happens to be running on this machine (plain ray.init() would join one). Its
    # processes must not outlive this one, even if it is killed: a watcher ends them then
    # (reaper.py).
    from . import reaper

    say("Starting an embedded Ray for this run alone")
    reaper.start()
    ray.init(address="local", include_dashboard=False, log_to_driver=True,
             logging_level=_ray_logging_level())
    return RaySession("embedded")


def _forget_cached_auth_token() -> None:
    """Ray keeps the first auth token it loads: one loaded before the warm Ray's token was
    set must be read again."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return
    Config.initialize("")  # it keeps RAY_AUTH_MODE as it was on import
    loader = getattr(AuthenticationTokenLoader, "instance", None)
    if loader is not None and hasattr(loader(), "reset_cache"):
        loader().reset_cache()


def _single_machine_mode() -> None:
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, on import: a Ray imported before it
    was set is told through the constant it keeps (else a driver joining a Ray on 127.0.0.1
    would look for it at the machine's own address)."""
    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0").lower() not in ("0", "false"):
        return
    try:
        from ray._private import ray_constants
    except ImportError:
        return
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def _no_log_dedup() -> None:
    """Ray merges lines from different workers that differ only in their numbers into one
    "[repeated Nx across cluster]" line. Task lines differ in their [run/step/task] prefix, and
    each must reach the console as printed. Ray reads RAY_DEDUP_LOGS when it is imported: one
    imported earlier is told through the value its log module keeps."""
    if os.environ.get("RAY_DEDUP_LOGS", "0").lower() not in ("0", "false"):
        return
    try:
        from ray._private import ray_logging
    except ImportError:  # another Ray layout: its deduplication stays
        return
    if hasattr(ray_logging, "RAY_DEDUP_LOGS"):
        ray_logging.RAY_DEDUP_LOGS = False


def _no_worker_log_prefix() -> None:
    if os.environ.get("RAY_DISABLE_WORKER_LOG_PREFIX", "1").lower() in ("0", "false"):
        return
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: its prefix stays
        return
    if hasattr(ray_constants, "RAY_DISABLE_WORKER_LOG_PREFIX"):
        ray_constants.RAY_DISABLE_WORKER_LOG_PREFIX = True
