"""What a task may leave behind in its process, and what it writes below sys.stdout.

Metaflow runs every task in a fresh process; rayflow reuses a worker for many tasks (a batch
of foreach splits runs in one). Each task here changes module globals, the environment and
the working directory, and records what it found first: each must find them as a fresh
process would. Each also writes at the file-descriptor level (os.system, a subprocess,
os.write, one subprocess writing more than a pipe holds), which must be in its log.
"""

import multiprocessing
import os
import subprocess
import sys

from rayflow import FlowSpec, Parameter, step

counter = 0
SEEN = []  # changed in place by every task: each must find it empty, as imported
TABLE = {"calls": 0}


class Box:
    """A module-level object whose attribute a task sets."""

    def __init__(self):
        self.count = 0


BOX = Box()
ADDED_LATER = "ADDED_LATER"
BIG = 300_000  # bytes one subprocess writes: more than a pipe's buffer


class Shape:
    """A class defined in the flow file: its instances must load in later steps."""

    def __init__(self, side):
        self.side = side


def helper():
    return 1


def found(flow_name: str) -> dict:
    return {"counter": counter, "env": os.environ.get("SET_BY_CODE"), "seen": list(SEEN),
            "calls": TABLE["calls"], "box": BOX.count,
            "cwd": os.getcwd(), "added": "ADDED_BY_TASK" in globals(),
            "argv0": os.path.basename(sys.argv[0]), "flow": flow_name, "pid": os.getpid()}


def trample() -> None:
    global counter, ADDED_BY_TASK
    counter += 9
    ADDED_BY_TASK = 1
    SEEN.append(os.getpid())
    TABLE["calls"] += 1
    BOX.count += 1
    os.environ["SET_BY_CODE"] = "yes"
    os.chdir("/")


class FreshProcessFlow(FlowSpec):
    width = Parameter("width", default=40, type=int)

    @step
    def start(self):
        self.first = found(self.name)
        trample()
        self.items = list(range(self.width))
        self._private = "kept"
        self.__mangled = "kept too"
        self.func = lambda: 1
        self.method = self.start
        self.plain = helper
        self.builtin = len
        self.shape = Shape(3)
        self.doomed = "inherited"
        child = multiprocessing.get_context("fork").Process(target=print, args=("forked-child",))
        child.start()
        child.join()
        self.next(self.split, foreach="items")

    @step
    def split(self):
        self.saw = found(self.name)
        trample()
        os.system(f"echo system-{self.input}")
        subprocess.run(["echo", f"subprocess-{self.input}"], check=True)
        os.write(1, f"fdwrite-{self.input}\n".encode())
        os.write(2, f"fderr-{self.input}\n".encode())
        if self.input == 0:
            subprocess.run([sys.executable, "-c", f"print('z' * {BIG})"], check=True)
        print(f"python-{self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.saws = [i.saw for i in inputs]
        self.merge_artifacts(inputs, exclude=["saw"])
        self.next(self.end)

    @step
    def end(self):
        self.last = found(self.name)
        self.private_seen = self._private
        self.mangled_seen = self._FreshProcessFlow__mangled
        self.side = self.shape.side
        self.shape_module = type(self.shape).__module__
        _ = self.doomed
        del self.doomed


if __name__ == "__main__":
    FreshProcessFlow()
