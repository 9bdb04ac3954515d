"""Running flows. Who owns what (docs/INTERNALS.md has the whole map, with each module's side).

In the driver (the `rayflow run` process):
- `run_loop.py`: `RunLoop`, one run's lifetime, driving the scheduler on an executor;
- `scheduler.py`: which tasks are ready (a pure state machine, no Ray); `joins.py`: a join's
  inputs as columns;
- `batching.py`: what goes into a batch (sizing, specs, options) and its result;
- `executor.py`: the `Executor` interface; `executors.py` picks one: `inline_executor.py`,
  `ray_executor.py`, `pool_executor.py` (steps on actor pools);
- `ray_session.py`: joining Ray (`connect` returns a `RaySession`); `address.py`: an
  `--address` checked to answer as Ray before `ray.init` is handed it;
- `run_record.py`: the run record's final status, heartbeat, report and run-id files;
- `resume.py`: finding the origin run and cloning its finished tasks; `spin.py`: one past task.

In a worker (a Ray task or a pool actor; the inline executor runs them in the driver):
- `worker.py`: a batch: per-process caches, running and persisting it;
- `worker_task.py`: one task; `capture.py`: its stdout/stderr tee;
- `actor.py`: the pool actor and its setup (`current.actor`).

Both sides: `spec.py` and `wire.py` (the messages between them), `artifacts.py` (where
artifacts live during a run, and loading them), `errors.py` (`TaskError`), `crash.py`.

Ray is imported only by `ray_executor.py`, `pool_executor.py`, `actor.py`, `cluster.py`,
`ray_session.py`, and lazily by `artifacts.resolve_ref` and `worker.node_name` when a Ray
object or runtime is present; the inline executor runs a whole flow with Ray never started.
"""
