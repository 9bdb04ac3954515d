"""How the small messages between the driver and the workers are pickled.

A dataclass with `slots=True` pickles through `__getstate__`/`__setstate__` that dataclasses
generates, which calls `dataclasses.fields()` for every object, both ways. The driver of a
100,000-split foreach pickles and unpickles hundreds of thousands of these (specs out,
outcomes and artifact locations back, twice a batch): profiled, those calls alone were a
sixth of its time. `by_position` pickles such a class as its constructor and its field values
in order, which the C unpickler rebuilds with one call.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter


def by_position(cls):
    """Class decorator (put it above @dataclass): pickle instances as `cls(*field values)`."""
    names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    values = attrgetter(*names)
    if len(names) == 1:
        def __reduce__(self):
            return cls, (values(self),)
    else:
        def __reduce__(self):
            return cls, values(self)
    cls.__reduce__ = __reduce__
    return cls
