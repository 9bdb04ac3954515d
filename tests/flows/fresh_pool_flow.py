"""fresh_process_flow.py's checks with the splits on one pooled actor: every split runs in
the same long-lived process, and must still find it as a fresh process would."""

import os
import subprocess
import sys

from rayflow import FlowSpec, Parameter, actor_pool, resources, step

counter = 0
SEEN = []  # changed in place by every task: each must find it empty, as imported
TABLE = {"calls": 0}


class Box:
    """A module-level object whose attribute a task sets."""

    def __init__(self):
        self.count = 0


BOX = Box()
MODEL = None


def load_model():
    """The pool's setup, once per actor: what it binds stays for the actor's tasks."""
    global MODEL
    MODEL = "loaded"
    TABLE["setup"] = "done"  # changed in place by the setup: kept for the actor's tasks
    return {}


def found(flow_name: str) -> dict:
    return {"counter": counter, "env": os.environ.get("SET_BY_CODE"), "seen": list(SEEN),
            "calls": TABLE["calls"], "box": BOX.count,
            "cwd": os.getcwd(), "added": "ADDED_BY_TASK" in globals(),
            "argv0": os.path.basename(sys.argv[0]), "flow": flow_name, "pid": os.getpid(),
            "model": MODEL, "setup": TABLE.get("setup")}


def trample() -> None:
    global counter, ADDED_BY_TASK
    counter += 9
    ADDED_BY_TASK = 1
    SEEN.append(os.getpid())
    TABLE["calls"] += 1
    BOX.count += 1
    os.environ["SET_BY_CODE"] = "yes"
    os.chdir("/")


class FreshPoolFlow(FlowSpec):
    width = Parameter("width", default=8, type=int)

    @step
    def start(self):
        self.first = found(self.name)
        self.items = list(range(self.width))
        self.next(self.split, foreach="items")

    @resources(cpu=0.25)
    @actor_pool(min=0, max=1, setup=load_model)
    @step
    def split(self):
        self.saw = found(self.name)
        trample()
        os.system(f"echo system-{self.input}")
        subprocess.run(["echo", f"subprocess-{self.input}"], check=True)
        os.write(1, f"fdwrite-{self.input}\n".encode())
        os.write(2, f"fderr-{self.input}\n".encode())
        if self.input == 0:
            subprocess.run([sys.executable, "-c", "print('z' * 300000)"], check=True)
        print(f"python-{self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.saws = [i.saw for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.last = found(self.name)


if __name__ == "__main__":
    FreshPoolFlow()
