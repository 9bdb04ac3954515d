"""Task output on the console as Metaflow prints it: every line prefixed `[run/step/task] `,
a task's stdout and stderr lines in the order it wrote them, and no task's lines after those
of a task that follows it (tests/flows/console_order_flow.py; rayflow/runtime/console.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = re.compile(r"^\[(\d+)/(\w+)/(\d+)\] (\S+) (out|err) (\d+)$")


def test_task_lines_are_prefixed_in_order_and_after_their_parents(ray_session, datastore):
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
           "RAYFLOW_DATASTORE": datastore}
    # stdout and stderr into one pipe, as on a terminal.
    proc = subprocess.run([sys.executable, "-m", "rayflow_cli.main", "run",
                           "tests/flows/console_order_flow.py"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout
    run_id = proc.stdout.split("Done: ConsoleOrderFlow/")[1].split()[0]
    found = [LINE.match(ln) for ln in proc.stdout.splitlines() if " out " in ln or
             " err " in ln]
    assert found and all(found), proc.stdout
    assert {m[1] for m in found} == {run_id}
    by_task: dict[str, list[str]] = {}
    for m in found:
        by_task.setdefault(f"{m[2]}/{m[3]}", []).append(f"{m[5]} {m[6]}")
    for task, lines in by_task.items():
        count = 2 if task.startswith(("join", "end")) else 3
        assert lines == [f"{s} {i}" for i in range(count) for s in ("out", "err")], task
    steps = [m[2] for m in found]
    last = {s: max(i for i, x in enumerate(steps) if x == s) for s in set(steps)}
    first = {s: steps.index(s) for s in set(steps)}
    assert last["start"] < first["work"] and last["work"] < first["join"] < first["end"], steps
    assert len(by_task) == 1 + 4 + 1 + 1
