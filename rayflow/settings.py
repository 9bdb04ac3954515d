"""rayflow's settings: every RAYFLOW_* environment variable, declared once.

Each `Setting` names its variable, its type, its default and one line of meaning; `get()` reads
the environment each time it is called (a worker serves many runs, and a run's datastore
settings reach it only while its batch runs), so nothing here is cached. A value that does not
parse is one `SettingError` naming the variable, its value and what it takes.

`rayflow --help` lists them all (`help_epilog`), and so does the README (`markdown_table`; a
unit test keeps the README's table equal to it).
Code that needs a setting reads it here, never from os.environ.
"""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from typing import Any

from .exceptions import RayflowException


class SettingError(RayflowException):
    """An environment variable rayflow reads has a value it cannot use."""


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{var}={raw!r} is not a yes or no. Set it to 1 (or true, yes, on) "
                       f"or 0 (or false, no, off), or unset it.")


def _seconds(var: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise SettingError(f"{var}={raw!r} is not a number of seconds. Set it to a number "
                           f"such as 30 (0 or more), or unset it.")
    return value


def _text(var: str, raw: str) -> str:
    return raw.strip()


def _path(var: str, raw: str) -> str:
    return os.path.abspath(os.path.expanduser(raw.strip()))


def _names(var: str, raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


_PARSERS = {"flag": _flag, "seconds": _seconds, "text": _text, "path": _path,
            "names": _names}


@dataclass(frozen=True)
class Setting:
    """One environment variable: `type` is flag (1/0, true/false, yes/no, on/off), seconds,
    text, path (~ expanded, made absolute) or names (comma separated). `also`: variables read
    when this one is unset or empty (Metaflow's names for the same setting)."""

    name: str
    type: str
    default: Any
    meaning: str
    also: tuple[str, ...] = ()
    shown_default: str | None = None  # the default in words, where it is not a plain value

    def get(self) -> Any:
        """The value now: the first of `name`, `also` that is set and not blank, parsed; else
        the default."""
        for var in (self.name, *self.also):
            raw = os.environ.get(var)
            if raw is not None and raw.strip():
                return _PARSERS[self.type](var, raw)
        if self.type == "path" and self.default is not None:
            return _path(self.name, self.default)
        return self.default

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name, "").strip())

    def describe_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.type == "flag":
            return "1" if self.default else "0"
        if self.default in (None, ()):
            return "unset"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


DATASTORE = Setting(
    "RAYFLOW_DATASTORE", "text", None,
    "Where runs are stored: a folder, `local`, or s3://bucket/prefix (as --datastore).",
    shown_default="the nearest .rayflow folder, else ./.rayflow")
DATASTORE_OUTAGE_S = Setting(
    "RAYFLOW_DATASTORE_OUTAGE_S", "seconds", 30.0,
    "How long an S3 server that stops answering is waited for before an operation fails "
    "(0: never wait).")
RUN_LEASE_S = Setting(
    "RAYFLOW_RUN_LEASE_S", "seconds", 60.0,
    "A run whose heartbeat is older than this reads as interrupted (its driver died).")
UNSCHEDULABLE_TIMEOUT = Setting(
    "RAYFLOW_UNSCHEDULABLE_TIMEOUT", "seconds", 120.0,
    "A task no alive Ray node can run fails after this long, naming what it asked for.")
GANG_START_TIMEOUT = Setting(
    "RAYFLOW_GANG_START_TIMEOUT", "seconds", 60.0,
    "A @parallel step whose members cannot all be placed at once fails after this long, "
    "naming what it asked for.")
GANG_STRATEGY = Setting(
    "RAYFLOW_GANG_STRATEGY", "text", "SPREAD",
    "How a @parallel step's members are placed on the nodes: SPREAD, STRICT_SPREAD, PACK or "
    "STRICT_PACK (Ray placement group strategies); @parallel(strategy=...) overrides it.")
CONNECT_TIMEOUT_S = Setting(
    "RAYFLOW_CONNECT_TIMEOUT_S", "seconds", 5.0,
    "How long `--address` (or RAY_ADDRESS) is given to answer as a Ray cluster before a run "
    "says nothing is there.")
NO_WARM_RAY = Setting(
    "RAYFLOW_NO_WARM_RAY", "flag", False,
    "1: a run neither starts nor joins the warm local Ray; it starts an embedded Ray of its "
    "own, ended with it (as run --no-warm).")
WARM_IDLE_S = Setting(
    "RAYFLOW_WARM_IDLE_S", "seconds", 900.0,
    "The warm local Ray that a run (or `rayflow up`) starts ends itself after this long "
    "with no run on it.")
RAY_LOGS = Setting(
    "RAYFLOW_RAY_LOGS", "flag", False,
    "1: show Ray's own log lines (starting, connecting, its warnings) as well as the steps' "
    "output.")
PYPI_OPTIONS = Setting(
    "RAYFLOW_PYPI_OPTIONS", "text", None,
    "Options for resolving and installing @pypi packages, as `uv pip install` (or pip) takes "
    "them, e.g. `--index-url URL` or `--find-links DIR --no-index`.")
HOME = Setting(
    "RAYFLOW_HOME", "path", "~/.rayflow",
    "Where the warm local Ray's state is kept (a folder of this user's own, mode 0700), and "
    "the packages `rayflow spin` installs for @pypi/@conda steps (spin-envs/).")
NO_REPORT = Setting(
    "RAYFLOW_NO_REPORT", "flag", False,
    "1: write no run report when a run ends (`rayflow card Flow/run` builds it later).")
USER = Setting(
    "RAYFLOW_USER", "text", None,
    "The user runs are recorded under and the default namespace is built from.",
    shown_default="METAFLOW_USER, else USER, else the login name")
CARD_MODULES = Setting(
    "RAYFLOW_CARD_MODULES", "names", (),
    "More Python modules that define card types, comma separated.")
CARD_NO_WARNING = Setting(
    "RAYFLOW_CARD_NO_WARNING", "flag", False,
    "1: no card warnings (e.g. current.card used in a step without @card).",
    also=("METAFLOW_CARD_NO_WARNING",))

ALL: tuple[Setting, ...] = (
    DATASTORE, DATASTORE_OUTAGE_S, RUN_LEASE_S, UNSCHEDULABLE_TIMEOUT, GANG_START_TIMEOUT,
    GANG_STRATEGY, CONNECT_TIMEOUT_S, NO_WARM_RAY, WARM_IDLE_S, RAY_LOGS, PYPI_OPTIONS, HOME,
    NO_REPORT, USER, CARD_MODULES, CARD_NO_WARNING)


def help_epilog() -> str:
    """The settings as `rayflow --help` lists them (\\b keeps click from re-wrapping them)."""
    lines = ["\b", "Environment variables:"]
    for s in ALL:
        lines.append(f"  {s.name} ({s.type}; default: {s.describe_default()})")
        lines += textwrap.wrap(s.meaning, 78, initial_indent=" " * 6,
                               subsequent_indent=" " * 6)
    return "\n".join(lines)


def markdown_table() -> str:
    """The settings as the README lists them."""
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.type} | {s.describe_default()} | {s.meaning} |" for s in ALL]
    return "\n".join(rows)
