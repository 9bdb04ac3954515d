"""`--help` as click (and Metaflow) writes it: an option's value named in capitals (`--datastore
TEXT`, `--max-workers INTEGER`), an argument by its name alone (`FILE`), and the usage line
without braces. Typer 0.29 writes Python types instead (`--datastore <str>`,
`FILE <str>`, `{FILE}`), which read as placeholders to type literally."""

from __future__ import annotations


def use_click_metavars() -> None:
    """Make Typer's help name values as click does; a Typer without these hooks is left as
    it is."""
    try:
        from typer import core
    except ImportError:
        return
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or not hasattr(option, "display_type_rich"):
        return

    def option_value(self, ctx):
        if self.metavar is not None:
            return self.metavar
        return click_name(self.display_type(ctx)) + ("..." if self.nargs != 1 else "")

    def argument_usage(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    option.display_type_rich = option_value
    argument.display_type_rich = lambda self, ctx: None
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = argument_usage


_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN",
          "path": "PATH", "datetime": "DATETIME"}


def click_name(typer_type: str) -> str:
    """Typer's `<str>`, `<list[str]>`, `<int range>`, `<a|b>` as click names them: TEXT,
    TEXT, INTEGER RANGE, [a|b]."""
    label = typer_type.strip("<>")
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    words = label.split(" ")
    if words[0] in _NAMES:
        return " ".join([_NAMES[words[0]], *(w.upper() for w in words[1:])])
    return f"[{label}]" if "|" in label else label.upper()
