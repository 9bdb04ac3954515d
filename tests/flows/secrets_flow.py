"""@secrets from three providers: `env` (the driver's RF_ENV_TOKEN), `file` (secrets.env in
the driver's working directory) and `inline`. The steps keep digests of what they saw, never
the values; start's @card shows its artifacts and decorators. @schedule: a run notes once
that it does nothing until the flow is deployed."""

import hashlib
import os

from rayflow import FlowSpec, card, current, schedule, secrets, step

INLINE_TOKEN = "inline-3d1f0b7c9e5a42f6"
NAMES = ("RF_ENV_TOKEN", "RF_FILE_TOKEN", "RF_INLINE_TOKEN")


def digests() -> dict:
    return {n: hashlib.sha256(os.environ[n].encode()).hexdigest() if n in os.environ else None
            for n in NAMES}


@schedule(cron="0 3 * * *")
class SecretsFlow(FlowSpec):
    @card
    @secrets(sources=["env.RF_ENV_TOKEN", {"type": "file", "id": "secrets.env"},
                      {"type": "inline", "id": "demo",
                       "options": {"env_vars": {"RF_INLINE_TOKEN": INLINE_TOKEN}}}])
    @step
    def start(self):
        self.seen = digests()
        self.pid = os.getpid()
        self.parallel = self._graph[current.step_name].parallel_step
        self.start_type = self._graph["start"].type
        print("start sees", sorted(n for n in NAMES if n in os.environ))
        self.items = list(range(8))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.seen_body = digests()
        self.pid = os.getpid()
        self.inside = self._graph[current.step_name].is_inside_foreach
        self.next(self.join)

    @step
    def join(self, inputs):
        self.body_seen = [i.seen_body for i in inputs]
        self.body_pids = [i.pid for i in inputs]
        self.inside = all(i.inside for i in inputs)
        self.merge_artifacts(inputs, include=["seen"])
        self.next(self.end)

    @step
    def end(self):
        self.seen_end = digests()
        self.end_pid = os.getpid()
