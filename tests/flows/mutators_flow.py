"""Mutators and user step decorators (Metaflow 2.16+): each step leaves behind what the
mutators and decorators did to it, for the tests to read."""

import os

from rayflow import (
    USER_SKIP_STEP,
    Config,
    FlowMutator,
    FlowSpec,
    Parameter,
    StepMutator,
    UserStepDecorator,
    config_expr,
    environment,
    step,
    user_step_decorator,
)


class per_step_env(FlowMutator):
    """Adds a parameter sized by the config, @environment(STEP_NAME=<step>) on every step,
    and (by its name, with an argument) the FlowMutator more_env."""

    def pre_mutate(self, mutable_flow):
        settings = dict(mutable_flow.configs)["settings"]
        mutable_flow.add_parameter("width", Parameter("width", default=settings["width"]))
        for name, s in mutable_flow.steps:
            s.add_decorator(environment, deco_kwargs={"vars": {"STEP_NAME": name}})
        mutable_flow.add_decorator("more_env:value=from_string")


class more_env(FlowMutator):
    """In mutate (after --with), adds MORE=<value> to every step's @environment."""

    def init(self, value="default"):
        self.value = value

    def mutate(self, mutable_flow):
        for _, s in mutable_flow.steps:
            for deco_name, _, _, attrs in s.decorator_specs:
                if deco_name == "environment":
                    attrs["vars"]["MORE"] = self.value
                    s.add_decorator(environment, deco_kwargs=attrs, duplicates=s.OVERRIDE)


@user_step_decorator
def stamp(step_name, flow, inputs, attributes):
    flow.stamp = attributes["label"]
    yield
    flow.stamped_after = step_name


class add_stamp(StepMutator):
    """Puts the user step decorator `stamp` on its step, by name, with a config's value."""

    def init(self, label):
        self.label = label

    def pre_mutate(self, mutable_step):
        mutable_step.add_decorator("stamp", deco_kwargs={"label": self.label})


@user_step_decorator
def even_only(step_name, flow, inputs):
    if flow.input % 2:
        yield USER_SKIP_STEP  # odd splits: the step does not run, the flow goes on
    else:
        yield


@user_step_decorator
def replaced(step_name, flow, inputs):
    def instead(f):
        f.replaced_ran = True
        return True  # call the replaced step's own self.next

    yield instead


class swallow(UserStepDecorator):
    def post_step(self, step_name, flow, exception=None):
        flow._swallowed = type(exception).__name__  # a `_name` artifact, as in Metaflow
        return None  # the step's exception is swallowed: the step succeeds


@per_step_env
class MutatorsFlow(FlowSpec):
    settings = Config("settings", default_value={"width": 3, "label": "cfg-label"})

    @add_stamp(config_expr("settings.label"))
    @step
    def start(self):
        self.env_start = os.environ.get("STEP_NAME")
        self.more = os.environ.get("MORE")
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @even_only
    @step
    def work(self):
        self.value = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(getattr(i, "value", -1) for i in inputs)
        self.next(self.swapped)

    @replaced
    @step
    def swapped(self):
        raise RuntimeError("the replaced step must not run")
        self.next(self.failing)

    @swallow
    @step
    def failing(self):
        raise ValueError("swallowed by @swallow")
        self.next(self.end)

    @step
    def end(self):
        self.env_end = os.environ.get("STEP_NAME")
        self.swallowed = self._swallowed


if __name__ == "__main__":
    MutatorsFlow()
