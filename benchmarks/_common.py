"""What every benchmark script shares: the machine's description, the RESULTS.md section
writer, a peak-RSS sampler, a Markdown table formatter and progress lines on stderr.

It must never time anything itself (each script owns its measurements), never assert a speed
target (targets are reported as met or not met, never enforced), and never touch sections of
RESULTS.md that belong to other scripts.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
import tempfile
import threading
import time

import psutil

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS = os.path.join(BENCH_DIR, "RESULTS.md")
DATA_DIR = os.path.join(BENCH_DIR, ".data")  # git-ignored scratch space, on the same disk
VENV_BIN = os.path.dirname(sys.executable)

_T0 = time.monotonic()
# The machine may be shared: the load when the script began says how quiet it was.
LOAD_AT_START = os.getloadavg()


def log(message: str) -> None:
    """A progress line on stderr, stamped with seconds since the script started."""
    print(f"[{time.monotonic() - _T0:7.1f} s] {message}", file=sys.stderr, flush=True)


def scratch_dir(prefix: str) -> str:
    """A fresh folder under benchmarks/.data (local disk, not tmpfs), for the caller to remove."""
    os.makedirs(DATA_DIR, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=DATA_DIR)


# -- the machine ------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - a missing library is reported, not fatal
        return "not installed"


def machine_description() -> str:
    """One line: cores, RAM, CPU model, OS and the library versions that set the numbers."""
    ram_gib = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores, {ram_gib:.0f} GiB RAM, {cpu_model()}, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"ray {_version('ray')}, pyarrow {_version('pyarrow')}, s3fs {_version('s3fs')}")


def git_revision() -> str:
    """The commit the numbers were measured at, with '+dirty' when rayflow/ had local edits."""
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rayflow", "cli"],
                               cwd=ROOT, text=True, capture_output=True,
                               check=False).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


REVISION_AT_START = git_revision()


# -- tables and RESULTS.md --------------------------------------------------------------------
def markdown_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def write_section(name: str, title: str, body: str) -> None:
    """Replace the section `name` of RESULTS.md (or append it), keeping every other section.

    A section is everything between `<!-- begin NAME -->` and `<!-- end NAME -->`; the date,
    machine and revision lines are added here so that no script forgets them."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    command = " ".join([f"benchmarks/{os.path.basename(sys.argv[0])}", *sys.argv[1:]])
    section = (f"<!-- begin {name} -->\n## {title}\n\n"
               f"- Date: {stamp}\n- Machine: {machine_description()}\n"
               f"- Load average (1/5/15 min) at start: {_load(LOAD_AT_START)}; at the end: "
               f"{_load(os.getloadavg())}\n"
               f"- rayflow revision: {_revision_line()}\n"
               f"- Command: `.venv/bin/python {command}`\n\n"
               f"{body.rstrip()}\n<!-- end {name} -->\n")
    try:
        with open(RESULTS) as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ("# Benchmark results\n\nEach section is written by the script it names "
                "(`benchmarks/<name>.py`); rerun the script to refresh it. Numbers hold only "
                "for the machine each section describes.\n")
    begin, end = re.escape(f"<!-- begin {name} -->"), re.escape(f"<!-- end {name} -->")
    pattern = re.compile(rf"{begin}.*?{end}\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = f"{RESULTS}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, RESULTS)  # atomic: a reader never sees half a file
    log(f"wrote section {name!r} of {os.path.relpath(RESULTS, ROOT)}")


def _revision_line() -> str:
    now = git_revision()
    if now == REVISION_AT_START:
        return now
    return f"{REVISION_AT_START} at start, {now} at the end (rayflow changed during the run)"


def _load(avg: tuple) -> str:
    return " / ".join(f"{x:.1f}" for x in avg)


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


# -- memory -----------------------------------------------------------------------------------
class RssSampler:
    """This process's peak RSS over a block: `with RssSampler() as s: ...` then s.peak.

    Two sources: a thread sampling RSS every `interval` seconds, and, on Linux, the kernel's
    own high-water mark (VmHWM, reset on entry through /proc/self/clear_refs). The sampler
    alone misses short spikes: while the main thread holds the GIL in one long C call (a big
    pickle, say), the sampler cannot run, and the memory may be freed before it does. `peak`
    is the larger of the two; `start_rss` is taken on entry, so `growth` is what the block
    added at its worst."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.proc = psutil.Process()
        self.start_rss = self.peak = self.sampled_peak = self.end_rss = 0
        self.kernel_peak: int | None = None
        self._hwm_reset = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.sampled_peak = max(self.sampled_peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    @staticmethod
    def _vm_hwm() -> int | None:
        try:
            with open("/proc/self/status") as fh:
                match = re.search(r"^VmHWM:\s+(\d+) kB", fh.read(), re.M)
        except OSError:
            return None
        return int(match.group(1)) * 1024 if match else None

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._hwm_reset = True
        except OSError:
            self._hwm_reset = False
        self.start_rss = self.sampled_peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.end_rss = self.proc.memory_info().rss
        self.sampled_peak = max(self.sampled_peak, self.end_rss)
        self.kernel_peak = self._vm_hwm() if self._hwm_reset else None
        self.peak = max(self.sampled_peak, self.kernel_peak or 0)

    @property
    def current(self) -> int:
        return self.proc.memory_info().rss

    @property
    def growth(self) -> int:
        return self.peak - self.start_rss


class Heartbeat:
    """Logs `describe()` every `every` seconds on a thread while a long step runs."""

    def __init__(self, label: str, describe=lambda: "", every: float = 10.0):
        self.label, self.describe, self.every = label, describe, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._t0 = 0.0

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                extra = self.describe()
            except Exception as e:  # noqa: BLE001 - a progress line must never stop a run
                extra = f"({type(e).__name__})"
            log(f"{self.label}: {time.monotonic() - self._t0:.0f} s {extra}")

    def __enter__(self):
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def ray_init(**kwargs):
    """Start a fresh embedded Ray, quietly; returns the ray module.

    `address="local"`: a bare `ray.init()` joins whatever cluster /tmp/ray/ray_current_cluster
    names (the last `ray start` on this machine, even a dead one, where it hangs retrying),
    and a benchmark must neither measure nor disturb someone else's cluster."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        ray.init(address="local", include_dashboard=False, log_to_driver=False, **kwargs)
    return ray


def private_ray_env(env: dict) -> tuple[dict, str]:
    """`env` for a subprocess that starts its own Ray (e.g. `rayflow run`), with RAY_TMPDIR
    set to a fresh folder, so Ray finds no ray_current_cluster there and starts a new
    instance, as on a clean machine. Returns (env, folder); the caller removes the folder.
    Kept short, under /tmp: Ray's socket paths inside it must stay below 108 characters."""
    folder = tempfile.mkdtemp(prefix="rfb-")
    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = folder
    return env, folder
