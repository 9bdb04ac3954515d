"""Running flows: the scheduler (pure), the executors (Ray, inline), the worker-side task code
and the runner that ties them together. Only `executor.py` and `task.py` touch Ray, and only
when a Ray executor is used."""
