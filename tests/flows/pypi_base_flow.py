"""@pypi_base reaches every step; a step's @pypi(disabled=True) runs in rayflow's own venv
(tests/integration/test_pypi_on_ray.py)."""

from rayflow import FlowSpec, pypi, pypi_base, step


def seen():
    import sys
    from importlib import metadata

    import rapidfuzz

    return metadata.version("rapidfuzz"), rapidfuzz.__version__, sys.prefix


@pypi_base(packages={"rapidfuzz": "0.0.1"})
class PypiBaseFlow(FlowSpec):
    @step
    def start(self):
        self.at_start = seen()
        self.next(self.middle)

    @pypi(disabled=True)
    @step
    def middle(self):
        self.at_middle = seen()
        self.next(self.end)

    @step
    def end(self):
        self.at_end = seen()


if __name__ == "__main__":
    PypiBaseFlow()
