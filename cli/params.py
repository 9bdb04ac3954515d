"""Parsing a flow's own parameters from the leftover command-line words (`--alpha 0.3`).

Typer knows rayflow's options; a flow's Parameters are only known once the flow file is
loaded, so they arrive here as raw words and are matched against the flow class.
"""

from __future__ import annotations

from rayflow.exceptions import ParameterError
from rayflow.parameters import flow_parameters


def split_flow_args(flow_cls, words: list[str]) -> dict[str, str]:
    """`["--alpha", "0.3", "--flag", "--name=x"]` -> {"alpha": "0.3", "flag": "true", ...}."""
    params = {p.name: p for p in flow_parameters(flow_cls)}
    params.update({name.replace("_", "-"): p for name, p in list(params.items())})
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--") or word == "--":
            raise ParameterError(
                f"Unexpected argument {word!r}. Flow parameters are given as --name value.")
        name, eq, value = word[2:].partition("=")
        param = params.get(name)
        if param is None and name.startswith("no-") and name[3:] in params \
                and params[name[3:]].type is bool:
            out[params[name[3:]].name] = "false"
            i += 1
            continue
        if param is None:
            known = ", ".join(sorted({f"--{p.name}" for p in params.values()})) or "none"
            raise ParameterError(
                f"Flow {flow_cls.__name__} has no parameter --{name}. Its parameters: {known}. "
                f"See `rayflow run FILE --help`.")
        if not eq:
            nxt = words[i + 1] if i + 1 < len(words) else None
            if param.type is bool and (nxt is None or nxt.startswith("--")):
                value = "true"
            elif nxt is None:
                raise ParameterError(f"Parameter --{name} needs a value: --{name} VALUE.")
            else:
                value = nxt
                i += 1
        out[param.name] = value
        i += 1
    return out


def describe_parameters(flow_cls) -> str:
    lines = []
    for p in flow_parameters(flow_cls):
        default = "" if p.default is None else f" (default: {p.default!r})"
        req = " [required]" if p.required else ""
        lines.append(f"  --{p.name} {p.type_name.upper()}{req}{default}  {p.help}")
    return "\n".join(lines) or "  (none)"
