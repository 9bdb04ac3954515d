"""@pypi on a real Ray (tests/integration/test_pypi_on_ray.py): `pinned` pins rapidfuzz to a
version only a local wheel has (0.0.1, built by the test), `plain` has no @pypi and sees the
venv's rapidfuzz; a foreach of `width` splits and an @actor_pool step use the same
environment."""

from rayflow import FlowSpec, Parameter, actor_pool, pypi, step

PIN = {"rapidfuzz": "0.0.1"}


def seen():
    """(version by the package's metadata, by its module, the process's sys.prefix)."""
    import sys
    from importlib import metadata

    import rapidfuzz

    return metadata.version("rapidfuzz"), rapidfuzz.__version__, sys.prefix


class PypiFlow(FlowSpec):
    width = Parameter("width", default=4)

    @step
    def start(self):
        self.at_start = seen()
        self.next(self.pinned)

    @pypi(packages=PIN)
    @step
    def pinned(self):
        self.at_pinned = seen()
        self.next(self.plain)

    @step
    def plain(self):
        self.at_plain = seen()
        self.items = list(range(int(self.width)))
        self.next(self.each, foreach="items")

    @pypi(packages=PIN)
    @step
    def each(self):
        self.at_each = seen()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.each_seen = sorted({i.at_each for i in inputs})
        self.next(self.pooled)

    @actor_pool(max=1)
    @pypi(packages=PIN)
    @step
    def pooled(self):
        self.at_pooled = seen()
        self.next(self.end)

    @step
    def end(self):
        self.at_end = seen()


if __name__ == "__main__":
    PypiFlow()
