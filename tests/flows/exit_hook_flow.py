"""@exit_hook: the driver calls on_success hooks after a run that finished, on_error hooks
after one that failed. Each hook appends a line to the file EXIT_HOOK_OUT names."""

import os

from rayflow import FlowSpec, Parameter, exit_hook, step


def _note(text):
    with open(os.environ["EXIT_HOOK_OUT"], "a") as fh:
        fh.write(text + "\n")


def on_ok(run=None):
    _note(f"ok {run.pathspec} finished={run.finished} successful={run.successful} "
          f"x={run.data.x}")


def no_args():
    _note("no_args")


def broken():
    raise RuntimeError("hook blew up")


def on_fail(run):
    _note(f"fail {run.pathspec} successful={run.successful}")


@exit_hook(on_success=[broken, on_ok, "no_args"], on_error=[on_fail])
@exit_hook(on_error=["no_args"])
class ExitHookFlow(FlowSpec):
    fail = Parameter("fail", default=False, type=bool)

    @step
    def start(self):
        self.x = 42
        self.next(self.end)

    @step
    def end(self):
        if self.fail:
            raise ValueError("the end fails")


if __name__ == "__main__":
    ExitHookFlow()
