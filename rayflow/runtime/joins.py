"""The inputs of a join, kept column by column: a million splits cost the driver flat arrays,
not a million Python objects.

A join needs three things of each input: which task it is (step and task id), what it
inherited from the step that split (its *base*, the same object for every input of a foreach),
and the artifacts it made or changed below that step (its *own* locations). A `JoinTable` keeps
them in arrays: per input a step index, a task id, a base index and where its own locations
start; per location a name index, the hash as raw bytes, encoding and type indices, the size,
the payload (an index into the distinct payload refs, one per batch), the task that made it and
its inline bytes. That is about 30 bytes an input and 60 an artifact, against about 1.4 KB a
split for the scopes, links and location objects this replaces.

The run loop fills a table as the inputs arrive (`add`, from the scheduler's join bucket), then
sends the same object as the join's spec: `seal` flattens the few distinct bases, and pickling
drops what only the driver needs, so the spec is a few byte strings. The worker builds one
input's view only when the step touches it (`view`).

A location that does not fit the columns (a hash of another length, a task id that is
not a plain number) is kept whole, so nothing is lost for a shape the columns did not foresee.
No Ray here: payload refs are opaque objects.
"""

from __future__ import annotations

import pickle
import zlib
from array import array

from ..datastore.cas import HASH_BYTES
from .artifacts import PENDING_SHA, ArtifactLoc
from .scheduler import ParentLink, TaskKey

_SHA_BYTES = HASH_BYTES
_NO_SHA = bytes(_SHA_BYTES)
_DRIVER_ONLY = ("_filled", "_base_scopes", "_base_ids", "_step_ix", "_name_ix", "_string_ix",
                "_ref_ix")
_EMPTY = {"step": "I", "task": "q", "base": "I", "first": "Q", "nown": "I"}


def _plain_int(text) -> int | None:
    """`text` as a non-negative int when it is written exactly as one ("7", not "07")."""
    if type(text) is not str or not text.isdigit():
        return None
    value = int(text)
    return value if str(value) == text else None


def collapse(scope, split_step: str | None):
    """(own, removed, base) of a task arriving at a join: `base` is the scope of the task of
    `split_step` (shared by every input), `own` every location set below it, `removed` the
    inherited names deleted below it. With no such scope above, everything is own."""
    if scope is None:
        return {}, (), None
    parent = scope.parent
    if scope.step != split_step and (parent is None or parent.step == split_step):
        return scope.own, scope.removed, parent
    chain = []
    while scope is not None and scope.step != split_step:
        chain.append(scope)
        scope = scope.parent
    own: dict = {}
    removed: set = set()
    for level in reversed(chain):
        for name in level.removed:
            own.pop(name, None)
            removed.add(name)
        own.update(level.own)
    return own, removed, scope


class JoinTable:
    """The `expected` inputs of one join, in input order (slot i is split i of a foreach, or
    branch i of a static split)."""

    def __init__(self, expected: int, split_step: str | None = None):
        self.n = expected
        self.split_step = split_step
        self.count = 0
        self.steps: list[str] = []
        # Per input; made when the first input arrives alone (`_alloc`): a join whose inputs
        # all arrive as segments keeps nothing per input in the driver.
        for name, code in _EMPTY.items():
            setattr(self, name, array(code))
        # Inputs that arrived a batch at a time, still in the object store: (first slot,
        # count, step index, first task id, base index, payload ref, segment ref).
        self.segments: list[tuple] = []
        self.odd_task: dict[int, str] = {}       # slot -> a task id that is not a plain number
        self.removed: dict[int, frozenset] = {}  # slot -> inherited names it deleted
        self.bases: list[dict] = [{}]            # base 0: nothing inherited
        # One row per own location.
        self.names: list[str] = []
        self.strings: list = []                  # encodings and types
        self.refs: list = [None]                 # payload refs; 0: none (read the datastore)
        self.e_name = array("I")
        self.e_sha = bytearray()
        self.e_enc = array("I")
        self.e_type = array("I")
        self.e_size = array("q")
        self.e_ref = array("I")
        self.e_key = array("q")                  # the task that made it; -1: none
        self.e_inline = array("q")               # offset in `inline`; -1: none
        self.e_inline_len = array("I")
        self.inline = bytearray()
        self.odd: dict[int, ArtifactLoc] = {}    # row -> a location kept whole
        # Driver only (not pickled).
        self._filled: bytearray | None = None
        self._base_scopes: list = []
        self._base_ids: dict[int, int] = {}
        self._step_ix: dict[str, int] = {}
        self._name_ix: dict[str, int] = {}
        self._string_ix: dict = {}
        self._ref_ix: dict = {}

    @classmethod
    def of(cls, inputs: list, base: dict | None = None) -> "JoinTable":
        """A table of (step, task_id, own locations) inputs that all inherit `base`."""
        table = cls(len(inputs))
        table.bases = [dict(base or {})]
        for slot, (step, task_id, own) in enumerate(inputs):
            table._put(slot, step, task_id, own, (), 0)
        return table

    # ---------------------------------------------------------------------------- filling
    @property
    def full(self) -> bool:
        return self.count == self.n

    def parents(self) -> "JoinTable":
        """The join's parents, once full: the table itself (iterating it gives links)."""
        return self

    def _alloc(self) -> None:
        if len(self.step) != self.n:
            for name, code in _EMPTY.items():
                setattr(self, name, array(code, bytes(array(code).itemsize * self.n)))
        if getattr(self, "_filled", None) is None:
            self._filled = bytearray(self.n)

    def add_segment(self, first_slot: int, count: int, step: str, first_task_id: int,
                    base_scope, payload_ref, segment_ref) -> None:
        """Inputs `first_slot` .. `first_slot + count - 1` arrived together: tasks of `step`
        with task ids from `first_task_id` on, that inherit `base_scope`; their own locations
        are in the segment behind `segment_ref` (a JoinTable of `count` inputs, made by the
        worker, see runtime/fanout.py), their values in the payload behind `payload_ref`."""
        self.segments.append((first_slot, count, self._intern(self._step_ix, self.steps, step),
                              first_task_id, self._base_index(base_scope), payload_ref,
                              segment_ref))
        self.count += count

    def add(self, slot: int, link: ParentLink) -> None:
        """Input `slot` arrived: a finished task and its scope (see `collapse`)."""
        self._alloc()
        if self._filled[slot]:
            raise RuntimeError(f"task {link.key} arrived twice at a join (input {slot})")
        own, removed, base = collapse(link.scope, self.split_step)
        self._put(slot, link.key.step, link.key.task_id, own, removed, self._base_index(base))

    def _put(self, slot: int, step: str, task_id: str, own: dict, removed, base: int) -> None:
        self._alloc()
        self._filled[slot] = 1
        self.count += 1
        self.step[slot] = self._intern(self._step_ix, self.steps, step)
        tid = _plain_int(task_id)
        if tid is None:
            self.odd_task[slot] = str(task_id)
            tid = 0
        self.task[slot] = tid
        self.base[slot] = base
        if removed:
            self.removed[slot] = frozenset(removed)
        self.first[slot] = len(self.e_name)
        self.nown[slot] = len(own)
        for loc in own.values():
            self._append(loc)

    def _base_index(self, scope) -> int:
        if scope is None:
            return 0
        index = self._base_ids.get(id(scope))
        if index is None:
            self._base_scopes.append(scope)  # kept alive, so its id stays its own
            index = self._base_ids[id(scope)] = len(self._base_scopes)
        return index

    @staticmethod
    def _intern(index: dict, values: list, value) -> int:
        i = index.get(value)
        if i is None:
            i = index[value] = len(values)
            values.append(value)
        return i

    def _append(self, loc: ArtifactLoc) -> None:
        row = len(self.e_name)
        raw = _sha_bytes(loc.sha)
        key = -1 if loc.key is None else _plain_int(loc.key)
        inline = None
        if loc.inline is not None:
            try:
                inline = loc.inline.encode("ascii")
            except (UnicodeEncodeError, AttributeError):
                raw = None
        if raw is None or key is None:
            self.odd[row] = loc
            raw, key = _NO_SHA, -1
        self.e_name.append(self._intern(self._name_ix, self.names, loc.name))
        self.e_sha += raw
        self.e_enc.append(self._intern(self._string_ix, self.strings, loc.encoding))
        self.e_type.append(self._intern(self._string_ix, self.strings, loc.type))
        self.e_size.append(int(loc.size or 0))
        ref = loc.ref
        if ref is None:
            self.e_ref.append(0)
        else:
            i = self._ref_ix.get(ref)
            if i is None:
                i = self._ref_ix[ref] = len(self.refs)
                self.refs.append(ref)
            self.e_ref.append(i)
        self.e_key.append(key)
        if inline is None:
            self.e_inline.append(-1)
            self.e_inline_len.append(0)
        else:
            self.e_inline.append(len(self.inline))
            self.e_inline_len.append(len(inline))
            self.inline += inline

    # ---------------------------------------------------------------------------- sending
    def seal(self) -> "JoinTable":
        """Flatten the distinct bases (what the inputs inherited), as they are now: the join's
        spec carries them as location dicts. Called for every attempt of the join."""
        if self._base_scopes:
            self.bases = [{}] + [scope.flatten() for scope in self._base_scopes]
        return self

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in _DRIVER_ONLY}

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ---------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return self.n

    def step_of(self, i: int) -> str:
        if self.segments:
            self._materialize()
        return self.steps[self.step[i]]

    def task_id_of(self, i: int) -> str:
        if self.segments:
            self._materialize()
        odd = self.odd_task.get(i)
        return odd if odd is not None else str(self.task[i])

    def step_names(self) -> list[str]:
        if self.segments:
            self._materialize()
        steps = self.steps
        return [steps[k] for k in self.step]

    def __iter__(self):
        """Each input as a ParentLink (with no scope): the driver's view of a join's parents."""
        for i in range(self.n):
            yield ParentLink(TaskKey(self.step_of(i), self.task_id_of(i)), None)

    def pathspecs(self, flow: str, run_id: str) -> list[str]:
        return [f"{flow}/{run_id}/{self.step_of(i)}/{self.task_id_of(i)}" for i in range(self.n)]

    def _loc(self, row: int) -> ArtifactLoc:
        odd = self.odd.get(row)
        if odd is not None:
            return odd
        raw = bytes(self.e_sha[row * _SHA_BYTES:(row + 1) * _SHA_BYTES])
        key = self.e_key[row]
        start = self.e_inline[row]
        inline = None if start < 0 else \
            self.inline[start:start + self.e_inline_len[row]].decode("ascii")
        return ArtifactLoc(self.names[self.e_name[row]],
                           PENDING_SHA if raw == _NO_SHA else raw.hex(),
                           self.strings[self.e_enc[row]], self.strings[self.e_type[row]],
                           self.e_size[row], self.refs[self.e_ref[row]],
                           None if key < 0 else str(key), inline)

    def own(self, i: int) -> dict[str, ArtifactLoc]:
        if self.segments:
            self._materialize()
        first = self.first[i]
        locs = (self._loc(row) for row in range(first, first + self.nown[i]))
        return {loc.name: loc for loc in locs}

    def view(self, i: int, params: dict | None = None) -> dict[str, ArtifactLoc]:
        """Everything input `i` sees: the run's parameters, its base less what it deleted,
        and its own locations."""
        if self.segments:
            self._materialize()
        base = self.bases[self.base[i]]
        removed = self.removed.get(i)
        if removed:
            base = {k: v for k, v in base.items() if k not in removed}
        return {**(params or {}), **base, **self.own(i)}

    def locations(self):
        """Every location the table holds: the bases' and each input's own."""
        for base in self.bases:
            yield from base.values()
        if self.segments:
            self._materialize()
        for row in range(len(self.e_name)):
            yield self._loc(row)

    # ---------------------------------------------------------------------------- segments
    def _materialize(self) -> None:
        """Bring every segment into the columns (in the join's worker, which reads them)."""
        segments, self.segments = self.segments, []
        tables = _segment_tables([seg[6] for seg in segments])
        self._alloc()
        self._name_ix = {name: i for i, name in enumerate(self.names)}
        self._string_ix = {value: i for i, value in enumerate(self.strings)}
        self._ref_ix = {ref: i for i, ref in enumerate(self.refs) if i}
        for seg, table in zip(segments, tables):
            self._merge(seg, table)

    def _merge(self, seg: tuple, table: "JoinTable") -> None:
        first, count, step_ix, _task0, base_ix, payload_ref, _ = seg
        row0, inline0 = len(self.e_name), len(self.inline)
        end = first + count
        self.step[first:end] = array("I", [step_ix]) * count
        self.task[first:end] = table.task
        self.base[first:end] = array("I", [base_ix]) * count
        self.first[first:end] = array("Q", [row0 + f for f in table.first])
        self.nown[first:end] = table.nown
        for j, tid in table.odd_task.items():
            self.odd_task[first + j] = tid
        names = [self._intern(self._name_ix, self.names, n) for n in table.names]
        strings = [self._intern(self._string_ix, self.strings, v) for v in table.strings]
        ref = 0 if payload_ref is None else self._ref_ix.get(payload_ref)
        if ref is None:  # (none: every value is inline in the segment)
            ref = self._ref_ix[payload_ref] = len(self.refs)
            self.refs.append(payload_ref)
        self.e_name.extend(names[k] for k in table.e_name)
        self.e_sha += table.e_sha
        self.e_enc.extend(strings[k] for k in table.e_enc)
        self.e_type.extend(strings[k] for k in table.e_type)
        self.e_size.extend(table.e_size)
        self.e_ref.extend(array("I", [ref]) * len(table.e_name))
        self.e_key.extend(table.e_key)
        self.e_inline.extend(o + inline0 if o >= 0 else -1 for o in table.e_inline)
        self.e_inline_len.extend(table.e_inline_len)
        self.inline += table.inline
        for row, loc in table.odd.items():
            self.odd[row0 + row] = loc.at(payload_ref)

    # ---------------------------------------------------------------------------- pending
    def _pending_rows(self):
        sha, start = self.e_sha, 0
        while True:
            pos = sha.find(_NO_SHA, start)
            if pos < 0:
                break
            if pos % _SHA_BYTES:
                start = pos + 1
                continue
            row = pos // _SHA_BYTES
            if row not in self.odd:
                yield row
            start = pos + _SHA_BYTES
        for row, loc in self.odd.items():
            if loc.pending:
                yield row

    def pending_makers(self) -> set[str]:
        """The tasks that made a location whose hash is still to come (they were handed on
        before their checkpoints were written)."""
        out = {loc.key for base in self.bases for loc in base.values() if loc.pending}
        out.update(self._loc(row).key for row in self._pending_rows())
        out.discard(None)
        return out

    def resolve_pending(self, final) -> None:
        """Replace each location whose hash is pending by `final(loc)`."""
        for row in list(self._pending_rows()):
            self.odd[row] = final(self._loc(row))
        self.bases = [{n: final(loc) if loc.pending else loc for n, loc in base.items()}
                      for base in self.bases]


def _segment_tables(refs: list) -> list["JoinTable"]:
    """The JoinTables behind segment refs: (datastore url, flow, path) of a segment written
    to the datastore, an ObjectRef, or an InlineRef (in-process)."""
    from .artifacts import InlineRef, resolve_ref

    raw: list = [None] * len(refs)
    stored: dict[tuple, list[int]] = {}
    remote: list[int] = []
    for i, ref in enumerate(refs):
        if isinstance(ref, tuple):
            stored.setdefault(ref[:2], []).append(i)
        elif isinstance(ref, InlineRef):
            raw[i] = resolve_ref(ref)
        else:
            remote.append(i)
    if remote:
        import ray

        for i, value in zip(remote, ray.get([refs[i] for i in remote])):
            raw[i] = value
    if stored:
        from .fanout import read_segments

        for store, slots in stored.items():
            for i, value in zip(slots, read_segments(store, [refs[i][2] for i in slots])):
                raw[i] = value
    return [pickle.loads(zlib.decompress(t)) if isinstance(t, bytes) else t for t in raw]


def _sha_bytes(sha: str) -> bytes | None:
    if sha == PENDING_SHA:
        return _NO_SHA
    if len(sha) != 2 * _SHA_BYTES:
        return None
    try:
        raw = bytes.fromhex(sha)
    except ValueError:
        return None
    return None if raw == _NO_SHA or raw.hex() != sha else raw
