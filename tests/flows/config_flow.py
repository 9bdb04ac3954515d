"""Configs everywhere Metaflow allows them: a flow decorator, step decorators (attributes and
**unpacking), parameter defaults (an expression and a function), and as artifacts."""

import os

from rayflow import (
    Config,
    FlowSpec,
    Parameter,
    config_expr,
    current,
    environment,
    project,
    resources,
    retry,
    step,
)


def pairs(text):
    return dict(line.split("=", 1) for line in text.split() if line)


def more(ctx):
    return ctx.configs.settings.base + 1


@project(name=config_expr("settings").project)
class ConfigFlow(FlowSpec):
    settings = Config("settings", default_value={"base": 10, "project": "cfg_test",
                                                 "greeting": "hi", "cpus": 1, "retries": 1})
    env = Config("env", default_value={"vars": {"FROM_ENV_CONFIG": "yes"}})
    extra = Config("extra", default="extra.txt", parser=pairs)
    base = Parameter("base", default=config_expr("settings").base, type=int)
    plus_one = Parameter("plus_one", default=more, type=int)
    fail = Parameter("fail", default=False)

    @environment(**env)
    @resources(cpu=settings.cpus)
    @step
    def start(self):
        self.seen_env = os.environ.get("FROM_ENV_CONFIG")
        self.task_obj = current.task
        self.next(self.end)

    @retry(times=settings.retries, minutes_between_retries=0)
    @environment(vars={"GREETING": settings.greeting,
                       "TWICE": config_expr("str(settings.base * 2)")})
    @step
    def end(self):
        if self.fail:
            raise RuntimeError("told to fail")
        self.greeting = os.environ["GREETING"]
        self.twice = os.environ["TWICE"]
        self.project = current.project_name
        self.total = self.base + self.plus_one
        self.colour = self.extra.colour if self.extra else "none"


if __name__ == "__main__":
    ConfigFlow()
