"""The secrets providers rayflow has built in: `inline` (Metaflow's), `env` and `file`.

Their messages name variables and files, never a value.
"""

from __future__ import annotations

import json
import os

from . import SecretsProvider


class InlineSecretsProvider(SecretsProvider):
    """Metaflow's `inline`: the secret is written in the source, `options={"env_vars": {...}}`.
    For tests and examples: the values are in the flow's code."""

    TYPE = "inline"

    def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
        env_vars = options.get("env_vars", {})
        if not isinstance(env_vars, dict):
            raise ValueError("options['env_vars'] must be a dict of variable names to values")
        return dict(env_vars)


def _names(secret_id: str) -> list[str]:
    names = [n.strip() for n in secret_id.split(",") if n.strip()]
    if not names:
        raise ValueError("the id names no variable: give one or more names, comma-separated")
    return names


class EnvSecretsProvider(SecretsProvider):
    """Variables of the driver's environment (where `rayflow run` runs), named by the id
    (`"env.API_TOKEN"`, or several: `{"type": "env", "id": "USER_A,USER_B"}`), set under the
    same names in the step."""

    TYPE = "env"
    RESOLVE_ON_DRIVER = True

    def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
        names = _names(secret_id)
        missing = [n for n in names if n not in os.environ]
        if missing:
            raise ValueError(f"the driver's environment has no {', '.join(missing)}: set "
                             "it before `rayflow run`")
        return {n: os.environ[n] for n in names}


class FileSecretsProvider(SecretsProvider):
    """A file on the driver, its path the id (relative to the driver's working directory): a
    JSON object (a `.json` file, or `options={"format": "json"}`), else a dotenv file
    (`NAME=value` lines, read with python-dotenv). `options={"keys": [...]}` takes only those
    keys (each must be there)."""

    TYPE = "file"
    RESOLVE_ON_DRIVER = True

    def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
        path = os.path.abspath(os.path.expanduser(secret_id))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no file {path} (relative paths are read from the "
                                    f"driver's working directory, {os.getcwd()})")
        READ_FILES.add(path)
        fmt = options.get("format") or ("json" if path.endswith(".json") else "dotenv")
        values = _read_json(path) if fmt == "json" else _read_dotenv(path, fmt)
        keys = options.get("keys")
        if keys is None:
            return values
        missing = [k for k in keys if k not in values]
        if missing:
            raise KeyError(f"{path} has no {', '.join(map(str, missing))}")
        return {k: values[k] for k in keys}


# The files the `file` provider read in this process (the driver): a cluster run leaves them
# out of the flow folder it ships to the nodes (runtime/ray_session.py).
READ_FILES: set[str] = set()


def secret_files_under(folder: str) -> list[str]:
    """Ray working_dir exclude patterns ("/<path>", from `folder`) for the secret files read
    here that lie inside `folder`."""
    folder = os.path.abspath(folder)
    return sorted("/" + os.path.relpath(p, folder).replace(os.sep, "/") for p in READ_FILES
                  if p.startswith(folder + os.sep))


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        # The decoder's message quotes no content, only where it stopped.
        raise ValueError(f"{path} is not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object of "
                         "variable names to values")
    return data


def _read_dotenv(path: str, fmt: str) -> dict:
    if fmt != "dotenv":
        raise ValueError(f"format {fmt!r} is not one of 'dotenv', 'json'")
    from dotenv import dotenv_values

    # No interpolation: ${X} stays as written rather than reading the driver's environment.
    values = dotenv_values(path, interpolate=False)
    empty = [k for k, v in values.items() if v is None]
    if empty:
        raise ValueError(f"{path}: {', '.join(empty)} has no '=value'")
    return dict(values)


BUILT_IN = (InlineSecretsProvider, EnvSecretsProvider, FileSecretsProvider)
