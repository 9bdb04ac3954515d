"""One broken flow per lint rule. The line each error must point at carries a comment
`# expect: <ClassName>`; test_lint.py finds it, so editing this file cannot break the tests'
line numbers silently."""

from _graph_helpers import step

from rayflow import parallel


class NoStart:  # expect: NoStart
    @step
    def begin(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoEnd:  # expect: NoEnd
    @step
    def start(self):
        self.next(self.finish)

    @step
    def finish(self):
        self.next(self.start)


class TwoStartMarks:
    @step(start=True)
    def a(self):
        self.next(self.end)

    @step(start=True)
    def b(self):  # expect: TwoStartMarks
        self.next(self.end)

    @step
    def end(self):
        pass


class MarkedStartBesideStart:
    @step(start=True)
    def begin(self):
        self.next(self.start)

    @step
    def start(self):  # expect: MarkedStartBesideStart
        self.next(self.end)

    @step
    def end(self):
        pass


class MarkedEndBesideEnd:
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):  # expect: MarkedEndBesideEnd
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        pass


class MarkedEndHasNext:
    @step(start=True)
    def begin(self):
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        self.next(self.begin)  # expect: MarkedEndHasNext


class SingleStepWithNext:
    @step
    def only(self):
        self.next(self.end)  # expect: SingleStepWithNext


class EdgeIntoMarkedStart:
    @step(start=True)
    def begin(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.begin)  # expect: EdgeIntoMarkedStart

    @step(end=True)
    def finish(self):
        pass


class ReservedName:
    @step
    def start(self):
        self.next(self.input)

    @step
    def input(self):  # expect: ReservedName
        self.next(self.end)

    @step
    def end(self):
        pass


class UnderscoreName:
    @step
    def start(self):
        self.next(self._hidden)

    @step
    def _hidden(self):  # expect: UnderscoreName
        self.next(self.end)

    @step
    def end(self):
        pass


class TooManyArgs:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self, inputs, extra):  # expect: TooManyArgs
        self.next(self.end)

    @step
    def end(self):
        pass


class StartWithInputs:
    @step
    def start(self, inputs):  # expect: StartWithInputs
        self.next(self.end)

    @step
    def end(self):
        pass


class EndHasNext:
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)  # expect: EndHasNext


class NextInsideIf:
    @step
    def start(self):
        self.flag = True
        if self.flag:
            self.next(self.a)  # expect: NextInsideIf
        else:
            self.next(self.end)

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class StatementAfterNext:
    @step
    def start(self):
        self.next(self.end)  # expect: StatementAfterNext
        print("too late")

    @step
    def end(self):
        pass


class MissingNext:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):  # expect: MissingNext
        self.x = 1

    @step
    def end(self):
        pass


class NextWithString:
    @step
    def start(self):
        self.next("end")  # expect: NextWithString

    @step
    def end(self):
        pass


class EmptyNext:
    @step
    def start(self):
        self.next()  # expect: EmptyNext

    @step
    def end(self):
        pass


class NextWithCondition:
    @step
    def start(self):
        self.next(self.end, condition="flag")  # expect: NextWithCondition

    @step
    def end(self):
        pass


class ForeachNotLiteral:
    @step
    def start(self):
        self.items = [1, 2]
        name = "items"
        self.next(self.body, foreach=name)  # expect: ForeachNotLiteral

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class UnknownTarget:
    @step
    def start(self):
        self.next(self.trian)  # expect: UnknownTarget

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NonStepTarget:
    @step
    def start(self):
        self.next(self.helper)  # expect: NonStepTarget

    def helper(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class DuplicateTarget:
    @step
    def start(self):
        self.next(self.a, self.a)  # expect: DuplicateTarget

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class EdgeIntoStart:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.start)  # expect: EdgeIntoStart

    @step
    def end(self):
        pass


class ForeachTwoTargets:
    @step
    def start(self):
        self.items = [1]
        self.next(self.a, self.b, foreach="items")  # expect: ForeachTwoTargets

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class Cycle:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)  # expect: Cycle

    @step
    def end(self):
        pass


class Unreachable:
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):  # expect: Unreachable
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinWithoutInputs:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self):  # expect: JoinWithoutInputs
        self.next(self.end)

    @step
    def end(self):
        pass


class EndReachedFromBranches:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):  # expect: EndReachedFromBranches
        pass


class JoinThatSplits:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.c, self.d)  # expect: JoinThatSplits

    @step
    def c(self):
        self.next(self.join2)

    @step
    def d(self):
        self.next(self.join2)

    @step
    def join2(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SplitWithTwoJoins:
    @step
    def start(self):
        self.next(self.a, self.b, self.c, self.d)  # expect: SplitWithTwoJoins

    @step
    def a(self):
        self.next(self.j1)

    @step
    def b(self):
        self.next(self.j1)

    @step
    def c(self):
        self.next(self.j2)

    @step
    def d(self):
        self.next(self.j2)

    @step
    def j1(self, inputs):
        self.next(self.x)

    @step
    def j2(self, inputs):
        self.next(self.x)

    @step
    def x(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class UnrelatedJoin:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.c, self.d)

    @step
    def b(self):
        self.next(self.mixed)

    @step
    def c(self):
        self.next(self.mixed)

    @step
    def d(self):
        self.next(self.mixed)

    @step
    def mixed(self, inputs):  # expect: UnrelatedJoin
        self.next(self.end)

    @step
    def end(self):
        pass


class InputsOnNonJoin:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self, inputs):  # expect: InputsOnNonJoin
        self.next(self.end)

    @step
    def end(self):
        pass


class EndInsideForeach:
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.end)

    @step
    def end(self):  # expect: EndInsideForeach
        pass


class NextWithNumParallel:
    @step
    def start(self):
        self.next(self.end, num_parallel=4)  # expect: NextWithNumParallel

    @step
    def end(self):
        pass


class NumParallelWithForeach:
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.train, foreach="xs", num_parallel=2)  # expect: NumParallelWithForeach

    @parallel
    @step
    def train(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ParallelNotIntoJoin:
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @parallel
    @step
    def train(self):
        self.next(self.end)  # expect: ParallelNotIntoJoin

    @step
    def end(self):
        pass


class SwitchWithOneTarget:
    @step
    def start(self):
        self.choice = "a"
        self.next({"a": self.end}, condition="choice")  # expect: SwitchWithOneTarget

    @step
    def end(self):
        pass


class SwitchKeyNotLiteral:
    @step
    def start(self):
        key = "a"
        self.next({key: self.a, "b": self.end}, condition="key")  # expect: SwitchKeyNotLiteral

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchStraightIntoJoin:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.choice = "x"
        self.next({"x": self.join, "y": self.c}, condition="choice")

    @step
    def c(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):  # expect: SwitchStraightIntoJoin
        self.next(self.end)

    @step
    def end(self):
        pass


class TwoStepLoop:
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.go = "again"
        self.next({"again": self.a, "done": self.end}, condition="go")  # expect: TwoStepLoop

    @step
    def end(self):
        pass


class ParallelStep:
    @step
    def start(self):
        self.next(self.train)

    @parallel
    @step
    def train(self):  # expect: ParallelStep
        self.next(self.end)

    @step
    def end(self):
        pass
