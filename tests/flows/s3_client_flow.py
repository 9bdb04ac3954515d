"""S3(run=self) inside steps: a foreach writes one object per split under the run's folder,
the join reads them back with get_many and lists them."""

from rayflow import S3, FlowSpec, step


class S3ClientFlow(FlowSpec):

    @step
    def start(self):
        self.parts = ["a", "b", "c"]
        self.next(self.write, foreach="parts")

    @step
    def write(self):
        with S3(run=self) as s3:
            self.url = s3.put(f"parts/{self.input}.txt", f"part {self.input}",
                              metadata={"part": self.input})
        self.next(self.join)

    @step
    def join(self, inputs):
        self.urls = sorted(i.url for i in inputs)
        with S3(run=self) as s3:
            objs = s3.get_many([f"parts/{p}.txt" for p in "abc"])
            self.texts = [o.text for o in objs]
            self.meta = [o.metadata for o in objs]
            self.listed = sorted(o.key for o in s3.list_paths(["parts"]))
            self.paths = [o.path for o in objs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    S3ClientFlow()
