"""`--help` reads as click's and Metaflow's: values named in capitals (no `<str>` to type
literally), arguments by name, every command's one-line summary whole, and spin listing only
the options that mean something for one task (the others still accepted)."""

import os
import subprocess
import sys

import pytest

from cli.main import app

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def _help(*words: str) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    out = subprocess.run([sys.executable, "-m", "rayflow_cli.main", *words, "--help"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_command_list_summaries_are_whole():
    text = _help()
    lines = text[text.index("Commands:"):text.index("Environment")].splitlines()[1:]
    summaries = {ln.split()[0]: ln.split(None, 1)[1] for ln in lines if ln.strip()}
    assert set(summaries) == set(COMMANDS)
    for name, summary in summaries.items():
        assert not summary.endswith("..."), (name, summary)
        assert summary.count("(") == summary.count(")"), (name, summary)
        assert summary.count("`") % 2 == 0, (name, summary)
    assert summaries["output-dot"] == "Print the flow's graph in Graphviz's DOT language."


@pytest.mark.parametrize("command", ["run", "resume", "spin", "card", "status", "logs",
                                    "output-dot"])
def test_values_are_named_as_click_names_them(command):
    text = _help(command)
    for python_type in ("<str>", "<int", "<float", "<list[", "<bool>", "{FILE}"):
        assert python_type not in text, (command, python_type)
    if command in ("run", "resume", "spin"):
        assert "--datastore TEXT" in text and "\n  FILE  " in text


def test_spin_lists_only_what_means_something_for_one_task(tmp_path):
    text = _help("spin")
    for kept in ("--artifacts-module", "--skip-decorators", "--datastore", "--with",
                 "--run-id-file"):
        assert kept in text
    for gone in ("--max-workers", "--max-num-splits", "--max-log-size", "--executor",
                 "--address", "--tag", "--quiet"):
        assert gone not in text
    # Still accepted (python flow.py spin passes --quiet as run does): the spin gets as far
    # as finding no run, not as an unknown option.
    flow = tmp_path / "f.py"
    flow.write_text("from rayflow import FlowSpec, step\n\nclass F(FlowSpec):\n"
                    "    @step\n    def start(self):\n        self.next(self.end)\n\n"
                    "    @step\n    def end(self):\n        pass\n")
    out = subprocess.run([sys.executable, "-m", "rayflow_cli.main", "spin", str(flow),
                          "start", "--quiet", "--max-workers", "3", "--datastore",
                          str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "No such option" not in out.stderr, out.stderr
