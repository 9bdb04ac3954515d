"""An artifact made on node_a is read on node_b: the steps are pinned by custom resources."""

import numpy as np
import ray

from rayflow import FlowSpec, resources, step


def _node_id() -> str:
    return ray.get_runtime_context().get_node_id()


class ArtifactAcrossNodesFlow(FlowSpec):
    @resources(cpu=1, custom={"node_a": 1})
    @step
    def start(self):
        # ~2 MB: large enough to live in node_a's object store, not inline in a reply.
        self.values = np.arange(250_000, dtype=np.int64)
        self.made_on = _node_id()
        self.next(self.read)

    @resources(cpu=1, custom={"node_b": 1})
    @step
    def read(self):
        import mn_helpers  # a local module: it must have reached this node too

        self.read_on = _node_id()
        self.total = int(self.values.sum())
        self.helper_dir = mn_helpers.where()
        self.helper_square = mn_helpers.square(7)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ArtifactAcrossNodesFlow()
