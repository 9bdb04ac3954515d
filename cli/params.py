"""Parsing a flow's own parameters from the leftover command-line words (`--alpha 0.3`).

Typer knows rayflow's options; a flow's Parameters are only known once the flow file is
loaded, so they arrive here as raw words and are matched against the flow class.
"""

from __future__ import annotations

from rayflow.exceptions import ParameterError
from rayflow.parameters import flow_parameters

CONFIG_OPTIONS = {"--config": "file", "--config-value": "value"}


def split_config_args(flow_cls, words: list[str]
                      ) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Take `--config NAME FILE` and `--config-value NAME JSON` (each repeatable) out of the
    leftover words: (files, values, the other words). A flow with no Config but a Parameter
    of that name keeps the option as its parameter."""
    from rayflow.config import flow_configs

    options = dict(CONFIG_OPTIONS)
    if not flow_configs(flow_cls):
        names = {p.name for p in flow_parameters(flow_cls)}
        names |= {n.replace("_", "-") for n in names}
        options = {o: k for o, k in options.items() if o[2:] not in names}
    files: dict[str, str] = {}
    values: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        option = words[i]
        kind = options.get(option)
        if kind is None:
            rest.append(option)
            i += 1
            continue
        if len(words) - i < 3:
            raise ParameterError(f"{option} takes two values: {option} NAME "
                                 f"{'FILE' if kind == 'file' else 'JSON'}.")
        name, value = words[i + 1], words[i + 2]
        (files if kind == "file" else values)[name] = value
        i += 3
    return files, values, rest


def split_flow_args(flow_cls, words: list[str]) -> dict[str, str | list[str]]:
    """`["--alpha", "0.3", "--flag", "--name=x"]` -> {"alpha": "0.3", "flag": "true", ...}.
    A parameter declared with multiple=True collects every occurrence into a list; any other
    repeated option keeps its last value, as click does."""
    params = {p.name: p for p in flow_parameters(flow_cls)}
    # Runner(...).run(doc_file=...) gives --doc_file for a parameter named "doc-file".
    params.update({spelling: p for name, p in list(params.items())
                   for spelling in (name.replace("_", "-"), name.replace("-", "_"))})
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
        if param.multiple:
            out.setdefault(param.name, []).append(value)
        else:
            out[param.name] = value
        i += 1
    return out


def describe_parameters(flow_cls) -> str:
    from rayflow.config import flow_configs

    lines = []
    for c in flow_configs(flow_cls):
        source = f" (default file: {c.default_file!r})" if isinstance(c.default_file, str) \
            else " (has a default)" if c.default_file or c.default_config_value is not None \
            else ""
        req = " [required]" if c.required else ""
        lines.append(f"  --config {c.name} FILE | --config-value {c.name} JSON{req}{source}  "
                     f"{c.help}".rstrip())
    for p in flow_parameters(flow_cls):
        default = "" if p.default is None else f" (default: {_shown_default(flow_cls, p)!r})"
        req = " [required]" if p.required else ""
        many = " (repeatable)" if p.multiple else ""
        lines.append(f"  --{p.name} {p.type_name.upper()}{many}{req}{default}  {p.help}")
    return "\n".join(lines) or "  (none)"


def _shown_default(flow_cls, param):
    """A parameter's default as the run would take it: one computed from the configs
    (config_expr) is shown as its value under the default configs, when they are known."""
    from rayflow.config import config_values_of, has_delayed, resolve_configs, resolve_delayed

    if not has_delayed(param.default):
        return param.default
    try:
        configs = config_values_of(flow_cls) or resolve_configs(flow_cls, {}, {}, "")
        return resolve_delayed(param.default, configs)
    except Exception:  # noqa: BLE001 - shown as written when it cannot be computed here
        return param.default
