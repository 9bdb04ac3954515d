"""The run report of a 100,000-split run: how big it is, how long it takes to build, and how
long headless Chromium takes to load and draw it (issue 16).

    .venv/bin/python benchmarks/run_report.py [--n 100000] [--repeat 3]

A run of `start -> foreach over range(N) -> work -> join -> end` is made once (in-process
Runner, embedded Ray, local datastore; the runner writes its report at the end). Then, each
`--repeat` times: the report is built again from the datastore in a fresh Python process
(`rayflow.report.write_report`, timed inside it), and Chromium (headless, the browser test's
flags) loads it twice: `--dump-dom` (parse and lay out) and `--screenshot` (draw), each timed
whole, browser start included; a blank page is timed the same way, so the page's own share is
the difference. Not asserted anywhere.
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
import time

from _common import log, markdown_table, ray_init, scratch_dir, write_section

FLOW = '''
from rayflow import FlowSpec, Parameter, step


class ReportFlow(FlowSpec):
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
        pass
'''

BUILDER = '''
import json, sys, time
t0 = time.perf_counter()
from rayflow.datastore import FlowDataStore
from rayflow.report import write_report
ds = FlowDataStore.from_url(sys.argv[2], sys.argv[1].split("/")[0])
t1 = time.perf_counter()
path = write_report(ds, sys.argv[1].split("/")[1])
print(json.dumps({"build_s": time.perf_counter() - t1, "import_s": t1 - t0, "path": path}))
'''
IN_RUN: dict = {}  # the report the run itself wrote: how long it took to build
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def make_run(n: int, ds: str) -> str:
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    folder = scratch_dir("report-flow-")
    path = os.path.join(folder, "report_flow.py")
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(FLOW))
    ray = ray_init()
    loaded = load_flow(path)
    t0 = time.perf_counter()
    summary = RunLoop(loaded, resolve_parameters(loaded.cls, {"n": str(n)}),
                     RunOptions(datastore_url=ds, progress=False)).run()
    log(f"made {summary.pathspec} with {n:,} splits in {time.perf_counter() - t0:.1f} s")
    ray.shutdown()
    if not summary.successful or not summary.report:
        raise SystemExit(f"{summary.pathspec} failed or wrote no report")
    import re

    with open(summary.report, encoding="utf-8") as fh:
        built = re.search(r"in ([0-9.]+) s by rayflow", fh.read())
    IN_RUN["s"] = float(built.group(1)) if built else None
    IN_RUN["run_s"] = time.perf_counter() - t0
    return summary.pathspec


def chromium_seconds(browser: str, page: str, mode: str, profile: str) -> float:
    out = os.path.join(profile, "shot.png")
    arg = "--dump-dom" if mode == "dom" else f"--screenshot={out}"
    t0 = time.perf_counter()
    proc = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1400",
                           arg, f"file://{page}"], capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"chromium failed on {page}: {proc.stderr[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    ds = scratch_dir("report-ds-")
    pathspec = make_run(args.n, ds)
    blank = os.path.join(scratch_dir("report-blank-"), "blank.html")
    with open(blank, "w") as fh:
        fh.write("<!DOCTYPE html><html><body></body></html>")
    builds, doms, shots, base_doms, base_shots = [], [], [], [], []
    path = ""
    for r in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", BUILDER, pathspec, ds], check=True,
                             capture_output=True, text=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        builds.append(got["build_s"])
        path = got["path"]
        if browser:
            profile = scratch_dir("report-profile-")
            base_doms.append(chromium_seconds(browser, blank, "dom", profile))
            doms.append(chromium_seconds(browser, path, "dom", profile))
            base_shots.append(chromium_seconds(browser, blank, "shot", profile))
            shots.append(chromium_seconds(browser, path, "shot", profile))
        log(f"round {r + 1}: built in {got['build_s']:.2f} s"
            + (f", DOM {doms[-1]:.2f} s (blank {base_doms[-1]:.2f}), screenshot {shots[-1]:.2f} s"
               f" (blank {base_shots[-1]:.2f})" if browser else ""))
    size = os.path.getsize(path)
    with open(path, encoding="utf-8") as fh:
        html = fh.read()
    shapes = html.count("<rect")

    def med(xs):
        return f"{statistics.median(xs):.2f}" if xs else "n/a (no chromium)"

    rows = [[f"{args.n:,}", f"{size / 1024:,.0f} KiB", f"{shapes:,}",
             f"{IN_RUN['s']:.2f}" if IN_RUN.get("s") is not None else "n/a", med(builds),
             med(doms), med(base_doms), med(shots), med(base_shots)]]
    table = markdown_table(["splits", "report size", "<rect> shapes", "built by the run s",
                            "rebuilt from records s",
                            "Chromium DOM s", "blank page DOM s", "Chromium screenshot s",
                            "blank page screenshot s"], rows)
    print(table)
    notes = (f"One run of {args.n:,} foreach splits (local datastore, batched splits; the run "
             f"took {IN_RUN.get('run_s', 0):.1f} s, report included, on a Ray just started). "
             "Built by the run: from what the driver kept of each task as it finished (the "
             "page's own 'built in' line). Rebuilt: `write_report` in a fresh Python process, "
             "reading every task record of the run (import time excluded), as `rayflow card "
             "--rebuild` does. Chromium: the whole headless browser process, start "
             "included, for the report and for a blank page (the difference is the report's "
             f"own cost). Medians of {args.repeat} rounds. The timeline draws at most 3,000 "
             "tasks one box each; above that it shades time bins per lane, which is why the "
             "shape count stays small.\n\n")
    write_section("run_report", "Run report of a 100,000-split run (issue 16)", notes + table)


if __name__ == "__main__":
    main()
