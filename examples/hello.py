"""The smallest flow: start -> hello -> end, with a parameter.

    rayflow run examples/hello.py --name Ray
    python examples/hello.py run --name Ray
"""

from rayflow import FlowSpec, Parameter, current, step


class HelloFlow(FlowSpec):
    """Say hello from a Ray task."""

    name_ = Parameter("name", default="world", help="who to greet")

    @step
    def start(self):
        """Remember who to greet."""
        self.greeting = f"Hello, {self.name_}!"
        self.next(self.hello)

    @step
    def hello(self):
        """Print the greeting inside a Ray worker."""
        print(self.greeting, "from", current.pathspec)
        self.next(self.end)

    @step
    def end(self):
        """Done."""
        print("HelloFlow finished:", self.greeting)


if __name__ == "__main__":
    HelloFlow()
