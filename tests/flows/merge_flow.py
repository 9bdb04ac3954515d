from rayflow import FlowSpec, Parameter, step


class MergeFlow(FlowSpec):
    mode = Parameter("mode", default="agree")

    @step
    def start(self):
        self.shared = "same"
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.only_a = "a"
        self.next(self.join)

    @step
    def b(self):
        self.x = 1 if self.mode == "agree" else 2
        self.next(self.join)

    @step
    def join(self, inputs):
        if self.mode == "override":
            self.x = 99
        if self.mode == "exclude":
            self.merge_artifacts(inputs, exclude=["x"])
        elif self.mode == "include":
            self.merge_artifacts(inputs, include=["only_a"])
        else:
            self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MergeFlow()
