"""Foreach splits whose checkpoints take a while: each writes a few MB of its own random bytes
(no two alike, so nothing dedupes), for tests that break the datastore mid-checkpoint."""

import hashlib
import os
import time

from rayflow import FlowSpec, Parameter, step


class CheckpointFlow(FlowSpec):
    width = Parameter("width", default=8)
    mb = Parameter("mb", default=4)
    sleep = Parameter("sleep", default=0.2)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(self.sleep)
        self.data = os.urandom(self.mb * 1024 * 1024)
        self.digest = hashlib.sha256(self.data).hexdigest()
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        for i in inputs:
            assert hashlib.sha256(i.data).hexdigest() == i.digest
        self.digests = sorted(i.digest for i in inputs)
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.final = self.total


if __name__ == "__main__":
    CheckpointFlow()
