"""@pypi and @conda, the driver's side: each step's packages become a Ray runtime_env.

A step with `@pypi(packages={"pandas": "2.2.2"})` (or a flow with `@pypi_base`; a step's own
@pypi adds to the base's packages and overrides their versions, as in Metaflow) runs its tasks,
its batches and its @actor_pool's actors in a Ray runtime environment: `uv` (Ray's `pip`
where the `uv` package is missing) installs those packages into a virtualenv that Ray makes
from the one rayflow runs in, so the step keeps rayflow, Ray and everything else installed,
with the step's versions on top. Ray builds it once per node, the first time a task needs it,
and keeps it for later tasks and later runs (its key is the requirement list), so a foreach of
any width builds it once.

Before any task runs (before Ray starts), `attach_environments` resolves each distinct set of
requirements on the driver with a dry run of the same installer: a package that cannot be
resolved stops the run with one message naming the step, the package and the resolver's
reason. `@conda` goes through Ray's conda runtime environment, which needs conda on the
nodes: without it the run stops here, before Ray starts, saying what to install.

RAYFLOW_PYPI_OPTIONS adds installer options (an index, `--find-links DIR --no-index`) to the
resolution and to the build alike. Each task's record keeps its step's requirements and the
versions the task's process found installed (`environment` in its lineage; `rayflow dump`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from .. import settings
from ..exceptions import StepEnvironmentError

KINDS = ("pypi", "conda")
RESOLVE_TIMEOUT_S = 300


@dataclass
class StepEnvironment:
    """What one step runs in: the kind, the requirements as the installer reads them, and
    the Ray runtime_env that builds it."""

    kind: str
    requirements: list[str]
    runtime_env: dict
    packages: dict[str, str] = field(default_factory=dict)  # as written, name -> version

    def lineage(self) -> dict:
        """The part of each task record the driver knows (the worker adds the versions its
        process finds installed)."""
        return {"type": self.kind, "requirements": list(self.requirements),
                "installer": next(iter(self.runtime_env), "")}


def check_attributes(label: str, attrs: dict) -> None:
    """Refuse, when the decorator is applied, what no installer could read."""
    from ..exceptions import InvalidFlowError

    for key in ("packages", "libraries"):
        value = attrs.get(key)
        if value is None:
            attrs[key] = {}
            continue
        if key not in attrs:
            continue
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and k.strip() and isinstance(v, (str, int, float))
                for k, v in value.items()):
            raise InvalidFlowError(
                f"{label}({key}={value!r}): {key} is a dict of package names to versions, "
                f'e.g. {{"pandas": "2.2.2", "requests": ""}} ("" for any version).')
        attrs[key] = {k.strip(): str(v).strip() for k, v in value.items()}
    python = attrs.get("python")
    if python is not None and not isinstance(python, str):
        raise InvalidFlowError(f"{label}(python={python!r}): python is a version string, "
                               "e.g. '3.11'.")


def requirement(name: str, version: str) -> str:
    """Metaflow's reading of packages={name: version}: a bare version pins it (==), one that
    starts with an operator is kept as written, "" takes any version."""
    version = version.strip()
    if not version or version.startswith(("<", ">", "!", "~", "=", "@")):
        return f"{name}{version}"
    return f"{name}=={version}"


def _base_attributes(flow_cls, kind: str) -> dict | None:
    from ..decorators import flow_decorator_records

    records = [r for r in flow_decorator_records(flow_cls) if r.name == f"{kind}_base"]
    if not records:
        return None
    attrs = {"packages": {}, "libraries": {}, "python": None, "disabled": None,
             **records[-1].attributes}
    unknown = sorted(set(attrs) - {"packages", "libraries", "python", "disabled"})
    if unknown:
        from ..exceptions import InvalidFlowError

        raise InvalidFlowError(f"@{kind}_base does not take {', '.join(map(repr, unknown))}. "
                               "Its attributes are: packages, python, disabled.")
    check_attributes(f"@{kind}_base", attrs)
    return attrs


def step_requests(flow_cls, graph, decos) -> dict[str, tuple[str, dict, str | None]]:
    """{step: (kind, packages, python)} for each step that runs in an environment: the
    flow's @pypi_base/@conda_base merged with the step's own decorator (the step's packages
    win, its python= and disabled= too when given), as Metaflow merges them."""
    bases = {kind: _base_attributes(flow_cls, kind) for kind in KINDS}
    if bases["pypi"] is not None and bases["conda"] is not None:
        raise StepEnvironmentError(
            f"Flow {flow_cls.__name__} has both @pypi_base and @conda_base. Keep one.")
    out = {}
    for name in graph.steps:
        own = [d for d in decos[name].all if d.name in KINDS]
        if len(own) > 1:
            raise StepEnvironmentError(
                f"Step {name!r} ({graph[name].where}) has both @pypi and @conda. Keep one.",
                step=name)
        kind = own[0].name if own else next((k for k in KINDS if bases[k] is not None), None)
        if kind is None:
            continue
        base = bases[kind] or {}
        attrs = dict(own[0].attributes) if own else {}
        packages = {**base.get("libraries", {}), **base.get("packages", {}),
                    **attrs.get("libraries", {}), **attrs.get("packages", {})}
        disabled = attrs.get("disabled")
        disabled = base.get("disabled") if disabled is None else disabled
        python = attrs.get("python") or base.get("python")
        if disabled or not (packages or python):
            continue
        out[name] = (kind, packages, python)
    return out


def _check_python(step: str, kind: str, python: str | None, where: str) -> None:
    """A step's python= must be the Python rayflow runs on: Ray's environments keep it."""
    if python is None:
        return
    have = [str(n) for n in sys.version_info[:3]]
    want = python.strip().lstrip("=").split(".")
    if want != have[:len(want)]:
        raise StepEnvironmentError(
            f"Step {step!r} ({where}) asks @{kind}(python={python!r}), but its tasks run on "
            f"the Python of rayflow's own environment, {'.'.join(have)}: Ray's environments "
            f"keep the workers' Python. Remove python=, or run rayflow from a Python "
            f"{python} environment.", step=step)


def pypi_options() -> list[str]:
    raw = settings.PYPI_OPTIONS.get()
    return shlex.split(raw) if raw else []


def uv_binary() -> str | None:
    """The uv that rayflow's environment installs (a dependency), else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def pypi_runtime_env(requirements: list[str], options: list[str], uv: bool) -> dict:
    """Ray's `uv` (or `pip`) runtime_env for these requirements. Ray's virtualenv inherits
    the packages of the one rayflow runs in; the requirements go on top."""
    if uv:
        spec = {"packages": list(requirements)}
        if options:
            spec["uv_pip_install_options"] = list(options)
        return {"uv": spec}
    spec = {"packages": list(requirements)}
    if options:
        spec["pip_install_options"] = list(options)
    return {"pip": spec}


def conda_runtime_env(requirements: list[str]) -> dict:
    """Ray's `conda` runtime_env: the packages from conda-forge, rayflow's own requirements
    from PyPI (Ray adds itself and the driver's Python), and rayflow's code shipped."""
    from importlib import metadata

    import rayflow

    try:
        own = [r for r in (metadata.requires("rayflow") or []) if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        own = []
    own = [r for r in own if not r.lower().startswith("ray")]
    return {"conda": {"channels": ["conda-forge"],
                      "dependencies": [*requirements, "pip", {"pip": own}]},
            "py_modules": [os.path.dirname(os.path.abspath(rayflow.__file__))]}


def conda_binary() -> str | None:
    """conda as Ray's conda runtime environment finds it: RAY_CONDA_HOME, CONDA_EXE, PATH."""
    home = os.environ.get("RAY_CONDA_HOME")
    if home:
        path = os.path.join(home, "bin", "conda")
        return path if os.path.exists(path) else None
    exe = os.environ.get("CONDA_EXE")
    if exe and os.path.exists(exe):
        return exe
    return shutil.which("conda")


def _resolve_command(requirements: list[str], options: list[str], uv: str | None) -> list[str]:
    if uv:
        target = ["--python", sys.executable]
        if sys.prefix == sys.base_prefix:  # no virtualenv: Ray's inherits the system's
            target += ["--system", "--break-system-packages"]
        return [uv, "pip", "install", "--dry-run", "--quiet", *target, *options,
                *requirements]
    return [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
            "--disable-pip-version-check", *options, *requirements]


def resolve(requirements: list[str], options: list[str], uv: str | None) -> str | None:
    """Resolve the requirements on top of rayflow's own environment, as the step's build
    will: None when they resolve, else the resolver's reason in one paragraph."""
    cmd = _resolve_command(requirements, options, uv)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"the resolver did not answer in {RESOLVE_TIMEOUT_S} s"
    except OSError as exc:
        return f"the resolver could not start ({exc})"
    if proc.returncode == 0:
        return None
    return _reason(proc.stderr or proc.stdout) or f"the resolver exited {proc.returncode}"


def _reason(text: str) -> str:
    """The resolver's explanation without its decorations and chatter, on one line."""
    lines = []
    for line in text.splitlines():
        line = line.strip().lstrip("×╰─▶│ ").strip()
        if not line or line.startswith(("Using Python", "Resolved ", "hint:", "[notice]")):
            continue
        lines.append(line.removeprefix("ERROR: ").removeprefix("error: ")
                     .removeprefix("cause: "))
    if len(lines) > 1:  # uv's headline; the lines after it say which package and why
        lines = [ln for ln in lines if not ln.startswith("No solution found")] or lines
    return " ".join(lines)


def _named(reason: str, packages: dict[str, str]) -> list[str]:
    """The requested packages the resolver's reason names (all of them when it names none)."""
    def norm(text: str) -> str:
        return text.lower().replace("_", "-").replace(".", "-")

    text = norm(reason)
    named = [requirement(n, v) for n, v in packages.items() if norm(n) in text]
    return named or [requirement(n, v) for n, v in packages.items()]


def _refuse_unresolved(kind: str, steps: list[str], graph, packages: dict, reason: str):
    where = ", ".join(f"{s!r} ({graph[s].where})" for s in steps)
    hint = ("Fix the name or the version in the decorator" +
            ("" if settings.PYPI_OPTIONS.is_set() else
             ", or point RAYFLOW_PYPI_OPTIONS at your package index "
             "(e.g. --index-url URL, or --find-links DIR --no-index)") + ".")
    raise StepEnvironmentError(
        f"Step{'s' if len(steps) > 1 else ''} {where}: @{kind} cannot install "
        f"{', '.join(_named(reason, packages))}: {reason}\nNothing has run. {hint}",
        step=steps[0])


def _conda_environment(steps: list[str], graph, packages: dict, say) -> StepEnvironment:
    """Ray's conda environment where conda is installed. Without conda, packages that PyPI
    has under the same names and versions come from PyPI through uv instead (one line says
    so); others stop the run, saying what to install."""
    if conda_binary() is not None:
        reqs = [f"{n}={v}" if v and v[0].isdigit() else f"{n}{v}" for n, v in packages.items()]
        return StepEnvironment("conda", reqs, conda_runtime_env(reqs), dict(packages))
    many = len(steps) > 1
    where = ", ".join(f"{s!r} ({graph[s].where})" for s in steps)
    options, uv = pypi_options(), uv_binary()
    reqs = [requirement(n, v) for n, v in packages.items()]
    reason = resolve(reqs, options, uv) if uv else "uv is not installed"
    if reason is not None:
        raise StepEnvironmentError(
            f"Step{'s' if many else ''} {where} {'use' if many else 'uses'} @conda, which Ray "
            f"builds with conda on each node, and there is no conda here (none on PATH, in "
            f"CONDA_EXE or RAY_CONDA_HOME); nor can PyPI stand in ({reason}). Install conda "
            f"(Miniforge, or Miniconda) on every node of the Ray cluster so that `conda` is "
            f"on PATH, or use @pypi for packages from PyPI. Nothing has run.", step=steps[0])
    say(f"Step{'s' if many else ''} {', '.join(map(repr, steps))}: no conda here, so "
        f"@conda's {', '.join(reqs)} come{'s' if len(reqs) == 1 else ''} from PyPI (uv) "
        f"instead; install conda for conda's own builds.")
    return StepEnvironment("conda", reqs, pypi_runtime_env(reqs, options, True),
                           dict(packages))


def attach_environments(flow_cls, graph, decos, executor: str, say=print) -> dict[str, dict]:
    """Give every step with @pypi/@conda (or a flow-level base) its StepEnvironment
    (`decos[step].environment`), resolved now, before Ray starts; returns each such step's
    lineage for the task records. Raises StepEnvironmentError with the one message to show."""
    requests = step_requests(flow_cls, graph, decos)
    if not requests:
        return {}
    groups: dict[tuple, list[str]] = {}
    for step, (kind, packages, python) in requests.items():
        _check_python(step, kind, python, graph[step].where)
        key = (kind, tuple(sorted(packages.items())))
        groups.setdefault(key, []).append(step)
    if executor != "ray":
        step = next(iter(requests))
        raise StepEnvironmentError(
            f"Step {step!r} ({graph[step].where}) has @{requests[step][0]}: its packages are "
            f"installed by Ray's runtime environments, which --executor {executor} does not "
            f"use. Run it with --executor ray.", step=step)
    options, uv = pypi_options(), uv_binary()
    for (kind, items), steps in groups.items():
        packages = dict(items)
        if kind == "conda":
            env = _conda_environment(steps, graph, packages, say)
        else:
            reqs = [requirement(n, v) for n, v in packages.items()]
            reason = resolve(reqs, options, uv) if reqs else None
            if reason is not None:
                _refuse_unresolved(kind, steps, graph, packages, reason)
            env = StepEnvironment(kind, reqs, pypi_runtime_env(reqs, options, bool(uv)),
                                  packages)
        for step in steps:
            decos[step].environment = env
    return {s: decos[s].environment.lineage() for s in requests}


def installed_versions(requirements: list[str]) -> dict[str, str]:
    """{package: version} of the requirements as the running process finds them installed
    (the worker's half of a task's environment lineage)."""
    import re
    from importlib import metadata

    out = {}
    for req in requirements:
        name = re.split(r"[<>=!~@\[; ]", req, maxsplit=1)[0]
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
