"""Data-parallel training on a @parallel gang with torch.distributed, checked against one process.

    rayflow run examples/distributed_training.py --workers 2

`start` makes a regression data set. `train` runs as a gang of `--workers` members (one Ray
placement group): each member joins the process group from the environment rayflow sets as
torchrun would (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), wraps the same small
model in DistributedDataParallel (gloo on CPU, nccl on GPU) and trains on its own share of
every batch; DDP averages the gradients, so each step is the step one process would take on the
whole batch. `join` trains the same model in one process on the same data from the same seed
and checks that the weights agree (to float rounding), and that every member ended with the
same weights.
"""

from __future__ import annotations

import time

from rayflow import FlowSpec, Parameter, current, parallel, step


def make_data(samples: int, features: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=gen)
    true_w = torch.randn(features, 1, generator=gen)
    y = x @ true_w + 0.1 * torch.randn(samples, 1, generator=gen)
    return x.numpy(), y.numpy()


def make_model(features: int, seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(features, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 1))


def train(model, x, y, epochs: int, batch: int, rank: int = 0, world: int = 1,
          lr: float = 0.05):
    """Plain SGD over `epochs` passes of `batch`-row batches; with `world` > 1 this member
    takes rows [rank * batch/world, (rank + 1) * batch/world) of each batch."""
    import torch

    x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    share = batch // world
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            lo = start + rank * share
            xb, yb = x[lo:lo + share], y[lo:lo + share]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
    return float(loss.detach())


def weights_of(model) -> dict:
    module = getattr(model, "module", model)
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


class DistributedTrainingFlow(FlowSpec):
    workers = Parameter("workers", default=2, type=int, help="members of the gang")
    epochs = Parameter("epochs", default=20, type=int)
    samples = Parameter("samples", default=2048, type=int)
    batch = Parameter("batch", default=128, type=int, help="global batch (rows)")
    seed = Parameter("seed", default=0, type=int)
    features = 16

    @step
    def start(self):
        if self.batch % self.workers or self.samples % self.batch:
            raise ValueError("--batch must divide --samples, and --workers must divide --batch")
        self.x, self.y = make_data(self.samples, self.features, self.seed)
        self.next(self.train, num_parallel=self.workers)

    @parallel
    @step
    def train(self):
        import os

        import torch
        import torch.distributed as dist

        self.started_at = time.time()
        torch.set_num_threads(1)
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method="env://")
        dist.barrier()
        self.joined_at = time.time()
        rank, world = dist.get_rank(), dist.get_world_size()
        assert rank == current.parallel.node_index and world == current.parallel.num_nodes
        model = make_model(self.features, self.seed)
        if backend == "nccl":
            model = model.to(f"cuda:{int(os.environ['LOCAL_RANK'])}")
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        t0 = time.time()
        self.loss = train(ddp, self.x, self.y, self.epochs, self.batch, rank, world)
        dist.barrier()
        self.train_seconds = time.time() - t0
        self.weights = weights_of(ddp)
        self.rank = rank
        dist.destroy_process_group()
        self.next(self.join)

    @step
    def join(self, inputs):
        import numpy as np
        import torch

        torch.set_num_threads(1)  # as each member: the timing compares like with like
        members = sorted(inputs, key=lambda i: i.rank)
        self.gang_start_s = max(i.joined_at for i in members) - min(i.started_at for i in members)
        self.train_seconds = max(i.train_seconds for i in members)
        reference = make_model(self.features, self.seed)
        x, y = members[0].x, members[0].y
        t0 = time.time()
        train(reference, x, y, self.epochs, self.batch)
        self.single_seconds = time.time() - t0
        ref = weights_of(reference)
        self.max_member_diff = max(float(np.abs(m.weights[k] - members[0].weights[k]).max())
                                   for m in members for k in ref)
        self.max_diff = max(float(np.abs(members[0].weights[k] - ref[k]).max()) for k in ref)
        assert self.max_member_diff == 0.0, "the members' weights differ"
        assert self.max_diff < 1e-4, f"DDP weights differ from one process by {self.max_diff}"
        print(f"{len(members)} members: joined the process group {self.gang_start_s:.2f} s "
              f"after the first started; trained in {self.train_seconds:.2f} s (one process: "
              f"{self.single_seconds:.2f} s); largest weight difference to one process "
              f"{self.max_diff:.2e}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DistributedTrainingFlow()
