import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rayflow import FlowSpec, step


class ArrowFlow(FlowSpec):
    @step
    def start(self):
        self.table = pa.table({"a": np.arange(100_000), "b": np.arange(100_000) * 2.0})
        self.array = np.arange(10, dtype=np.float32)
        self.parts = [pa.table({"k": [i] * 3}) for i in range(4)]
        self.next(self.use, foreach="parts")

    @step
    def use(self):
        self.n = self.input.num_rows
        self.next(self.join)

    @step
    def join(self, inputs):
        self.rows = sum(i.n for i in inputs)
        self.merge_artifacts(inputs, include=["table"])
        self.next(self.end)

    @step
    def end(self):
        self.type_name = type(self.table).__name__
        self.sum_b = float(pc.sum(self.table["b"]).as_py())


if __name__ == "__main__":
    ArrowFlow()
