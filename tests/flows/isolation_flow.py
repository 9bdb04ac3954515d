"""Every task changes what it inherited in place; every task must still see the pristine value.

Splits of the foreach run many to a batch (they are tiny), so a change that leaked through a
shared object would show in the next split of the same batch. The joins check what each task
saw; `end` checks the parent's values are unchanged too.
"""

import numpy as np
import pandas as pd

from rayflow import FlowSpec, Parameter, step

PRISTINE = {"d": {"a": [1]}, "rows": [3, 1, 2], "arr": [0, 1, 2, 3, 4],
            "columns": ["x", "col"], "x": [1, 2], "item": [0]}


def seen(flow) -> dict:
    return {"d": {"a": list(flow.d["a"])}, "rows": list(flow.rows),
            "arr": flow.arr.tolist(), "columns": list(flow.df.columns),
            "x": flow.df["x"].tolist()}


def trample(flow) -> None:
    flow.d["a"].append(99)
    flow.rows.sort()
    flow.arr += 1
    del flow.df["col"]
    flow.df.loc[0, "x"] = 99


def pristine_artifacts(flow) -> None:
    flow.d = {"a": [1]}
    flow.rows = [3, 1, 2]
    flow.arr = np.arange(5)
    flow.df = pd.DataFrame({"x": [1, 2], "col": [3, 4]})


class IsolationFlow(FlowSpec):
    width = Parameter("width", default=300)

    @step
    def start(self):
        pristine_artifacts(self)
        self.lists = [[0], [1]]
        self.next(self.left, self.right)

    @step
    def left(self):
        self.saw = seen(self)
        trample(self)
        self.next(self.branches)

    @step
    def right(self):
        self.saw = seen(self)
        trample(self)
        self.next(self.branches)

    @step
    def branches(self, inputs):
        for inp in inputs:
            assert inp.saw == {k: PRISTINE[k] for k in inp.saw}, inp.saw
        # Both inputs inherited the same object from start; changing one input's copy in
        # place must not change the other's.
        inputs[0].lists[0].append(7)
        assert inputs[1].lists == [[0], [1]], inputs[1].lists
        self.next(self.fan)

    @step
    def fan(self):
        pristine_artifacts(self)
        shared = [0]
        self.items = [shared] * self.width  # one object, many items: each split owns a copy
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.saw = seen(self)
        self.saw["item"] = list(self.input)
        trample(self)
        self.input.append(self.index)
        self.next(self.join)

    @step
    def join(self, inputs):
        bad = [(i, inp.saw) for i, inp in enumerate(inputs) if inp.saw != PRISTINE]
        assert not bad, f"{len(bad)} splits saw a changed value, first: {bad[0]}"
        self.checked = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IsolationFlow()
