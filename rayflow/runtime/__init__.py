"""Running flows. Who owns what (docs/INTERNALS.md has the whole map):

- `scheduler.py`: which tasks are ready (a pure state machine, no Ray);
- `runner.py`: one run's lifetime, driving the scheduler on an executor;
- `executor.py`: the `Executor` interface and the in-process `InlineExecutor`;
  `ray_executor.py`: the Ray implementation;
- `batching.py`: batches of foreach splits (sizing, chunking, running, persisting);
- `task.py`: one task inside a worker; `errors.py`: `TaskError`, why a task failed;
- `resume.py`: finding the origin run and cloning its finished tasks;
- `artifacts.py`: where artifacts live during a run, and loading them in a worker.

Ray is imported only by `ray_executor.py`, `cluster.py`, `runner.connect_ray`, and lazily by
`artifacts.resolve_ref` and `batching._node_name` when a Ray object or runtime is present; the
inline executor runs a whole flow with Ray never started.
"""
