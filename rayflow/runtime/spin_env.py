"""`rayflow spin` of a @pypi/@conda step: the task runs in its step's environment, in a
process of its own, as a run's worker would.

A run's worker gets the step's packages from Ray's runtime environment: Ray's virtualenv of
rayflow's own, with what `uv pip install REQUIREMENTS` changes on top of it. A spin does the
same without Ray: the driver's dry run of that install (the one `attach_environments` makes
before a run) names the packages it would add or replace; those, and only those, are installed
(`--no-deps`) into a folder of their own under RAYFLOW_HOME/spin-envs, built once per set of
requirements and reused by later spins. The task then runs in `python -m
rayflow.runtime.spin_env` with that folder first on PYTHONPATH, so its imports find the
step's versions first and everything else (rayflow, Ray, the flow's own modules) as in this
process. Its output goes straight to this console, its artifacts to the spin datastore, as
an in-process spin's do, and its outcome comes back in a file.

A step whose requirements rayflow's environment already meets (the dry run changes nothing)
runs in this process, as a step without @pypi does. So does a @conda step where conda is
installed (Ray builds it with conda; a spin does not yet): one line says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from ..exceptions import RayflowException, StepEnvironmentError

ENVS_DIR = "spin-envs"
MARKER = "rayflow-spin-env.json"


@dataclass
class SpinEnvironment:
    """The environment a spun task runs in: the step's requirements, and the folder of
    packages put first on its PYTHONPATH (None: this process's environment has them)."""

    kind: str
    requirements: list[str]
    path: str | None

    def lineage(self) -> dict:
        return {"type": self.kind, "requirements": list(self.requirements), "installer": "uv"}


def spin_environment(wf, step: str, say) -> SpinEnvironment | None:
    """The environment step `step` of the flow `wf` runs in when spun, built now when it is
    not yet; None for a step without @pypi/@conda. Raises StepEnvironmentError when its
    packages cannot be resolved."""
    from .environments import (
        _check_python,
        conda_binary,
        pypi_options,
        requirement,
        step_requests,
        uv_binary,
    )

    request = step_requests(wf.cls, wf.graph, wf.decorators).get(step)
    if request is None:
        return None
    kind, packages, python = request
    where = wf.graph[step].where
    _check_python(step, kind, python, where)
    reqs = [requirement(n, v) for n, v in packages.items()]
    uv = uv_binary()
    if (kind == "conda" and conda_binary() is not None) or uv is None:
        say(f"rayflow spin: step {step!r} runs here, in this process's environment, not in its "
            f"@{kind} environment ({', '.join(reqs) or 'python'}): "
            + ("a spin does not build conda environments yet." if uv else "uv is missing."))
        return SpinEnvironment(kind, reqs, None)
    options = pypi_options()
    folder = _env_folder(reqs, options)
    pins = _read_marker(folder)
    if pins is None:
        pins = _build(uv, packages, options, folder, (step, where, kind), say)
    return SpinEnvironment(kind, reqs, folder if pins else None)


def _env_folder(reqs: list[str], options: list[str]) -> str:
    from .warm import private_home

    key = json.dumps([sys.prefix, sys.version, sorted(reqs), options])
    return os.path.join(private_home(), ENVS_DIR, hashlib.sha256(key.encode()).hexdigest()[:24])


def _read_marker(folder: str) -> list[str] | None:
    try:
        with open(os.path.join(folder, MARKER)) as fh:
            return list(json.load(fh)["pins"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _uv(cmd: list[str]) -> subprocess.CompletedProcess:
    from .environments import RESOLVE_TIMEOUT_S

    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return subprocess.CompletedProcess(cmd, 1, "", f"error: {exc}")


def _build(uv: str, packages: dict, options, folder: str, what: tuple, say):
    """Resolve the requirements on top of this environment, install what that adds or
    replaces into `folder`, and return those pins. `what`: (step, where, kind)."""
    from .environments import _named, _reason, _resolve_command, requirement

    step, where, kind = what
    reqs = [requirement(n, v) for n, v in packages.items()]
    cmd = [c for c in _resolve_command(reqs, options, uv) if c != "--quiet"]
    proc = _uv(cmd)
    if proc.returncode != 0:
        reason = _reason(proc.stderr or proc.stdout) or f"uv exited {proc.returncode}"
        raise StepEnvironmentError(
            f"Step {step!r} ({where}): @{kind} cannot install "
            f"{', '.join(_named(reason, packages))}: {reason}\nNothing has run.", step=step)
    pins = [line.strip()[2:].strip() for line in (proc.stderr + proc.stdout).splitlines()
            if line.strip().startswith("+ ")]
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=parent)
    try:
        if pins:
            say(f"rayflow spin: installing step {step!r}'s @{kind} packages "
                f"({', '.join(pins)}) once, into {folder}")
            proc = _uv([uv, "pip", "install", "--quiet", "--python", sys.executable,
                        "--target", tmp, "--no-deps", *options, *pins])
            if proc.returncode != 0:
                raise StepEnvironmentError(
                    f"Step {step!r} ({where}): @{kind} packages {', '.join(pins)} could not "
                    f"be installed for the spin: {_reason(proc.stderr or proc.stdout)}",
                    step=step)
        with open(os.path.join(tmp, MARKER), "w") as fh:
            json.dump({"requirements": reqs, "options": options, "pins": pins}, fh)
        try:
            os.rename(tmp, folder)
        except OSError:  # another spin built it meanwhile: theirs is as good
            if _read_marker(folder) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return pins


def run_spun_task(ctx, spec, skip_decorators: bool, persist: bool):
    """Run the task of `spec` in this process and, with `persist`, keep it and its cards in
    the spin datastore (`ctx.datastore_url`). Returns its TaskOutcome."""
    from ..datastore import FlowDataStore
    from ..decorators import StepDecorators
    from .artifacts import ArtifactLoader
    from .console import show
    from .worker import node_name, render_cards, worker_flow
    from .worker import persist as persist_batch
    from .worker_task import WorkerFlow, run_task

    target = FlowDataStore.from_url(ctx.datastore_url, ctx.flow_name)
    wf = worker_flow(ctx)
    if skip_decorators:
        wf = WorkerFlow(wf.cls, wf.graph, {**wf.decorators, spec.step: StepDecorators([])})
    cap = run_task(ctx, wf, spec, ArtifactLoader(lambda: target, consumers=1), target,
                   node_name())
    show(cap.outcome.console)  # what the task printed and still held (console.py)
    cap.outcome.console = None
    if persist:
        persist_batch(target, ctx, [spec], [cap])
        render_cards(target, ctx, wf, [spec], [cap])
    return cap.outcome


def run_in_environment(env: SpinEnvironment, ctx, spec, skip_decorators: bool,
                       persist: bool):
    """`run_spun_task` in a process of its own, with the environment's packages first on
    its PYTHONPATH. Returns the task's TaskOutcome."""
    with tempfile.TemporaryDirectory(prefix="rayflow-spin-") as tmp:
        job, result = os.path.join(tmp, "job.pickle"), os.path.join(tmp, "outcome.pickle")
        with open(job, "wb") as fh:
            # The flow file first: the child imports it before it reads the context and the
            # spec, which may hold instances of the flow module's classes (a parameter's
            # value, a foreach item).
            pickle.dump((ctx.flow_file, ctx.module_name), fh)
            pickle.dump((ctx, skip_decorators, persist), fh)
            pickle.dump(spec, fh)
        env_vars = dict(os.environ)
        env_vars["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.path, os.environ.get("PYTHONPATH")) if p)
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.run([sys.executable, "-m", "rayflow.runtime.spin_env", job, result],
                              env=env_vars)
        try:
            with open(result, "rb") as fh:
                return pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError):
            raise RayflowException(
                f"The spun task {spec.step}/{spec.task_id} ended (its process exited with "
                f"status {proc.returncode}) before it reported how it went; its output "
                "above says why.") from None


def _child(job: str, result: str) -> None:
    from .flowfile import import_flow_file

    with open(job, "rb") as fh:
        import_flow_file(*pickle.load(fh))  # kept for worker_flow, which imports it once
        ctx, skip_decorators, persist = pickle.load(fh)
        spec = pickle.load(fh)
    outcome = run_spun_task(ctx, spec, skip_decorators, persist)
    with open(result, "wb") as fh:
        pickle.dump(outcome, fh)


if __name__ == "__main__":
    _child(*sys.argv[1:3])
