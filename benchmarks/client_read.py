"""How fast the client reads a big foreach step, from a fresh process (issue 13, item 2).

    .venv/bin/python benchmarks/client_read.py [--n 100000] [--baseline REV]

A run of `start -> foreach over range(N) -> work (self.out = self.input * 2) -> join -> end`
is made once (in-process Runner on an embedded Ray, local datastore). Then, each in a fresh
Python process: (1) list every task of `work` with `list(Run(...)["work"])`, checking each is
successful; (2) load the small artifact `out` of 1,000 of them, checking its value.

Two earlier revisions, unpacked beside this one, make runs of the same flow with their own
code (so in the bundle format they wrote) and read them, alternated with the current code:
`--before` (default: the revision before bundles were written column by column), at N, and
`--baseline` (default: the one before the one-pass step index), on a smaller run
(`--baseline-n`, 1,000 splits, written by `--before`): per-task reads take hours at 100,000.
Targets (not asserted): listing 100,000 tasks in at most 5 s; 1,000 loads in 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap

from _common import log, markdown_table, met, scratch_dir, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_LIST_S = 5.0
TARGET_LOAD_S = 5.0
TARGET_FLOOR_RATIO = 2.0
LOADS = 1000

FLOW = '''
from rayflow import FlowSpec, Parameter, step


class ClientReadFlow(FlowSpec):
    n = Parameter("n", default=1000, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == self.n * (self.n - 1), self.total
'''

READER = '''
import json, sys, time
t0 = time.perf_counter()
from rayflow import Run, namespace
namespace(None)
run = Run(sys.argv[1], datastore=sys.argv[2])
imported = time.perf_counter() - t0
t1 = time.perf_counter()
tasks = list(run["work"])
assert all(t.successful for t in tasks)
listed = time.perf_counter() - t1
t2 = time.perf_counter()
picked = tasks[:: max(1, len(tasks) // int(sys.argv[3]))][: int(sys.argv[3])]
for t in picked:
    assert t["out"].data == 2 * t.index, t.id
loaded = time.perf_counter() - t2
print(json.dumps({"tasks": len(tasks), "list_s": listed, "load_s": loaded,
                  "loads": len(picked), "import_s": imported}))
'''

# The floor (issue 32): a plain script, no rayflow, that reads and parses the same files the
# client reads to list the step (its bundles, and the record and DONE of any task kept alone),
# and makes one small dict a task with its id, attempt and status.
RAW_PARSE = '''
import json, os, sys, time
flow, run_id = sys.argv[1].split("/")
t1 = time.perf_counter()
step_dir = os.path.join(sys.argv[2], flow, run_id, "work")
tasks = {}
for name in os.listdir(step_dir):
    path = os.path.join(step_dir, name)
    if name == "_bundles":
        for bundle in os.listdir(path):
            with open(os.path.join(path, bundle), "rb") as fh:
                doc = json.loads(fh.read())
            common, cols = doc["common"], doc["columns"]
            for i in range(doc["count"]):
                rec = {k: (cols[k][i] if k in cols else common.get(k))
                       for k in ("task_id", "attempt", "status")}
                best = tasks.get(rec["task_id"])
                if best is None or (rec["status"] == "success", rec["attempt"]) > \\
                        (best["status"] == "success", best["attempt"]):
                    tasks[rec["task_id"]] = rec
    elif os.path.isdir(path):
        files = os.listdir(path)
        attempts = sorted(int(f[:-5]) for f in files if f.endswith(".json") and f[:-5].isdigit())
        if attempts:
            with open(os.path.join(path, f"{attempts[-1]}.json"), "rb") as fh:
                rec = json.loads(fh.read())
            tasks[name] = {"task_id": name, "attempt": rec["attempt"],
                           "status": rec["status"] if "DONE" in files else "failed"}
assert all(t["status"] == "success" for t in tasks.values())
print(json.dumps({"tasks": len(tasks), "list_s": time.perf_counter() - t1, "load_s": 0.0,
                  "loads": 0, "import_s": 0.0}))
'''


MAKER = '''
import logging, sys, time
import ray
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.run_loop import RunLoop, RunOptions
ray.init(address="local", include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR)
loaded = load_flow(sys.argv[1])
t0 = time.perf_counter()
summary = RunLoop(loaded, resolve_parameters(loaded.cls, {"n": sys.argv[3]}),
                 RunOptions(datastore_url=sys.argv[2], progress=False)).run()
ray.shutdown()
assert summary.successful, summary.pathspec
print(summary.pathspec, time.perf_counter() - t0)
'''


def make_run(n: int, ds: str, code_dir: str) -> str:
    """A run of N splits, made by the rayflow in `code_dir`, in its own process and Ray."""
    folder = scratch_dir("client-read-flow-")
    path = os.path.join(folder, "client_read_flow.py")
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(FLOW))
    env = {**os.environ, "PYTHONPATH": code_dir}
    out = subprocess.run([sys.executable, "-c", MAKER, path, ds, str(n)], env=env,
                         cwd=code_dir, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"making a run of {n:,} splits with {code_dir} failed:\n{out.stderr}")
    pathspec, seconds = out.stdout.strip().splitlines()[-1].split()
    log(f"made {pathspec} with {n:,} splits in {float(seconds):.1f} s ({code_dir})")
    shutil.rmtree(folder, ignore_errors=True)
    return pathspec


def unpack(rev: str) -> str:
    folder = scratch_dir(f"client-read-{rev}-")
    archive = subprocess.run(["git", "archive", rev, "rayflow"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def read(pathspec: str, ds: str, code_dir: str | None) -> dict:
    """One fresh process reading the step: the client (`code_dir`: its rayflow), or, with
    no `code_dir`, the raw-parse floor."""
    env = {**os.environ, "PYTHONPATH": code_dir or ""}
    script = [READER, pathspec, ds, str(LOADS)] if code_dir else [RAW_PARSE, pathspec, ds]
    out = subprocess.run([sys.executable, "-c", *script], env=env, cwd=code_dir or ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default="6079de0",
                        help="rayflow revision that wrote a bundle as a list of records")
    parser.add_argument("--baseline", default="9623a3d",
                        help="rayflow revision to compare with (default: before the index)")
    parser.add_argument("--floor-only", action="store_true",
                        help="only the current client against the raw-parse floor, at N")
    args = parser.parse_args()

    ds = scratch_dir("client-read-ds-")
    current = unpack("HEAD")
    big = make_run(args.n, ds, current)
    cases = [("current", current, big, args.n), ("floor", None, big, args.n)]
    before = baseline = None
    if not args.floor_only:
        before = unpack(args.before)
        baseline = unpack(args.baseline)
        small = make_run(args.baseline_n, ds, current)
        big_before = make_run(args.n, ds, before)
        small_before = make_run(args.baseline_n, ds, before)
        cases += [("current", current, small, args.baseline_n),
                  ("before", before, big_before, args.n),
                  ("baseline", baseline, small_before, args.baseline_n)]
    results: dict[tuple, list[dict]] = {(c[0], c[3]): [] for c in cases}
    for r in range(args.repeat):
        for name, code, pathspec, n in cases:
            got = read(pathspec, ds, code)
            results[(name, n)].append(got)
            log(f"round {r + 1} {name} N={n:,}: {got['tasks']:,} tasks listed in "
                f"{got['list_s']:.2f} s, {got['loads']} loads in {got['load_s']:.2f} s")
    labels = {"current": "rayflow (one-pass step index, columnar bundles)",
              "floor": "raw-parse floor: a plain script parsing the same files (no rayflow)",
              "before": f"rayflow at {args.before} (bundles as lists of records)",
              "baseline": f"rayflow at {args.baseline} (per-task reads)"}
    rows = []
    for (name, n), runs in results.items():
        list_s = statistics.median(r["list_s"] for r in runs)
        load_s = statistics.median(r["load_s"] for r in runs)
        rows.append([labels[name], f"{runs[0]['tasks']:,}", f"{list_s:.2f}",
                     f"{runs[0]['tasks'] / list_s:,.0f}", f"{runs[0]['loads']:,}",
                     f"{load_s:.2f}",
                     met(list_s <= TARGET_LIST_S) if n >= 100_000 else "-",
                     met(load_s <= TARGET_LOAD_S) if runs[0]["loads"] >= LOADS else "-"])
    table = markdown_table(["code", "tasks", "list s (median)", "tasks/s", "loads",
                            "loads s", "list of 100k <= 5 s", "1,000 loads <= 5 s"], rows)
    floor = statistics.median(r["list_s"] for r in results[("floor", args.n)])
    client = statistics.median(r["list_s"] for r in results[("current", args.n)])
    target = (f"- listing {args.n:,} tasks within {TARGET_FLOOR_RATIO}x of the raw-parse "
              f"floor: {met(client <= TARGET_FLOOR_RATIO * floor)} ({client / floor:.2f}x: "
              f"{client:.2f} s vs {floor:.2f} s)")
    print(table)
    print(target)
    notes = (f"Runs of {args.n:,} and {args.baseline_n:,} foreach splits (local datastore; "
             "splits batched, so most task records live in bundles), each made by the revision "
             "that reads it (so in its own bundle format). Each cell: a fresh Python "
             "process that lists every task of the step (`list(Run(...)['work'])`, each "
             f"checked successful), then loads the small artifact `out` of up to {LOADS:,} of "
             f"them, checking each value. Median of {args.repeat} rounds, cases alternated, "
             "on the same datastore.\n\n")
    write_section("client_read", "client_read: reading a big foreach step (issues 13, 32)",
                  notes + table + "\n\nTargets:\n\n" + target)
    for folder in (ds, current, before, baseline):
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
