"""What task isolation costs: 100,000 batched splits that read what they inherited.

    .venv/bin/python benchmarks/isolation_cost.py [--n N] [--repeat R]

Every task must see inherited values exactly as its parent left them, so a split that reads a
mutable inherited value gets its own copy (the first split of a batch excepted), while
immutable values are shared zero-copy. The same flow runs with N splits, three ways:

- `nothing`: the split reads only `self.input` (an int): the overhead on the plain path;
- `tuple`: it also reads an inherited tuple of 50 ints and a 50-char string (immutable:
  shared, never copied);
- `list + dict`: it reads the same content as a list and a dict of 50 entries (mutable: a
  copy for every split after the first of each batch).

The difference between `list + dict` and `tuple` is the price of isolation for such a value;
the `nothing` row is the foreach benchmark's flow. Wall time of `Runner.run()` on a Ray this
script started, median of R runs. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import textwrap
import time

from _common import log, markdown_table, ray_init, scratch_dir, write_section

FLOW = '''
from rayflow import FlowSpec, Parameter, step


class IsolationCostFlow(FlowSpec):
    n = Parameter("n", default=1000, type=int)
    mode = Parameter("mode", default="nothing")

    @step
    def start(self):
        self.items = list(range(self.n))
        if self.mode == "tuple":
            self.shared = tuple(range(50))
            self.label = "x" * 50
        elif self.mode == "list + dict":
            self.shared = list(range(50))
            self.label = {str(i): i for i in range(50)}
        self.next(self.work, foreach="items")

    @step
    def work(self):
        out = self.input + 1
        if self.mode != "nothing":
            out += len(self.shared) + len(self.label)
        self.out = out
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.out for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        extra = 0 if self.mode == "nothing" else 100 * self.n
        assert self.total == self.n * (self.n + 1) // 2 + extra, self.total
'''

MODES = ("nothing", "tuple", "list + dict")


def run_once(loaded, n: int, mode: str) -> float:
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    ds = scratch_dir("isolation-")
    gc.collect()
    t0 = time.perf_counter()
    summary = RunLoop(loaded, {"n": n, "mode": mode},
                     RunOptions(datastore_url=ds, progress=False)).run()
    wall = time.perf_counter() - t0
    shutil.rmtree(ds, ignore_errors=True)
    if not summary.successful:
        raise SystemExit(f"{summary.pathspec} failed: {summary.failures[0].error.describe()}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from rayflow.runtime.flowfile import load_flow

    folder = scratch_dir("isolation-flow-")
    path = f"{folder}/isolation_cost_flow.py"
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(FLOW))
    ray = ray_init()
    loaded = load_flow(path)
    log("warm-up: N=500 in each mode")
    for mode in MODES:
        run_once(loaded, 500, mode)

    walls: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.repeat):
        for mode in MODES:  # alternated, so a load spike hits every mode alike
            wall = run_once(loaded, args.n, mode)
            walls[mode].append(wall)
            log(f"run {r + 1}/{args.repeat} {mode}: {wall:.2f} s")
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)

    base = statistics.median(walls["tuple"])
    rows = []
    for mode in MODES:
        med = statistics.median(walls[mode])
        rows.append([mode, f"{args.n:,}", f"{med:.2f}",
                     f"{min(walls[mode]):.2f}-{max(walls[mode]):.2f}",
                     f"{args.n / med:,.0f}", f"{med / base:.2f}x"])
    headers = ["a split reads", "N splits", "wall s (median)", "min-max", "splits/s",
               "vs tuple (shared)"]
    table = markdown_table(headers, rows)
    print(table)
    notes = ("Flow: `start -> foreach over range(N) -> work -> join (sum) -> end`; `work` "
             "reads `self.input` and, except in the first row, two inherited artifacts of 50 "
             "elements: immutable (tuple, str: shared zero-copy) or mutable (list, dict: copied "
             f"for each split after the first of its batch). Median of {args.repeat} runs, "
             "modes alternated; in-process Runner on a Ray started once and warmed; local "
             "datastore.\n\n")
    write_section("isolation_cost", "isolation_cost: what task isolation costs (issue 10)",
                  notes + table)


if __name__ == "__main__":
    main()
