import json

from rayflow import FlowSpec, IncludeFile, JSONType, Parameter, current, step


class ParamsFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="a float")
    count = Parameter("count", default=3, type=int)
    label = Parameter("label", default="x")
    flag = Parameter("flag", default=False, type=bool)
    config = Parameter("config", default='{"k": 1}', type=JSONType)
    must = Parameter("must", required=True, type=int, help="required")
    notes = IncludeFile("notes", default=None, help="a text file")

    @step
    def start(self):
        self.seen = {"alpha": self.alpha, "count": self.count, "label": self.label,
                     "flag": self.flag, "config": self.config, "must": self.must,
                     "notes": self.notes}
        self.ctx = {"flow_name": current.flow_name, "run_id": current.run_id,
                    "step_name": current.step_name, "task_id": current.task_id,
                    "retry_count": current.retry_count, "pathspec": current.pathspec,
                    "username": current.username, "is_running_flow": current.is_running_flow}
        self.next(self.end)

    @step
    def end(self):
        self.alpha_in_end = self.alpha
        print(json.dumps(self.seen))


if __name__ == "__main__":
    ParamsFlow()
