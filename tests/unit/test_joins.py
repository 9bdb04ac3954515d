"""The columnar join table (runtime/joins.py): what goes in comes out, and a wide join stays
small. Pure logic, no Ray."""

import hashlib
import pickle
import tracemalloc

import pytest

from rayflow.datastore.cas import blob_hash
from rayflow.runtime.artifacts import PENDING_SHA, ArtifactLoc, InlineRef, Scope
from rayflow.runtime.joins import JoinTable, collapse
from rayflow.runtime.scheduler import ParentLink, TaskKey


def sha(text: str) -> str:
    return blob_hash(text.encode())  # the datastore's own hash


def loc(name, value="v", ref=None, key="3", inline=None, sha_=None, type_="builtins.int"):
    return ArtifactLoc(name, sha(value) if sha_ is None else sha_, "pickle", type_, 17, ref,
                       key, inline)


def link(step, task_id, scope):
    return ParentLink(TaskKey(step, task_id), scope)


def test_collapse_takes_the_split_steps_scope_as_the_base():
    root = Scope({"p": loc("p")}, None, (), "start")
    split = Scope({"items": loc("items")}, root, (), "fan")
    work = Scope({"x": loc("x", "1"), "y": loc("y")}, split, ("p",), "work")
    more = Scope({"x": loc("x", "2")}, work, ("y",), "more")
    own, removed, base = collapse(more, "fan")
    assert base is split
    assert {n: a.sha for n, a in own.items()} == {"x": sha("2")}
    assert set(removed) == {"p", "y"}
    # One level below the split: its own dict as it is.
    own, removed, base = collapse(work, "fan")
    assert own is work.own and base is split and set(removed) == {"p"}
    # A split that leads straight into its join: all it sees is its base.
    own, removed, base = collapse(split, "fan")
    assert (own, set(removed), base) == ({}, set(), split)
    # No such step above: everything is own.
    own, removed, base = collapse(work, "elsewhere")
    assert base is None and set(own) == {"items", "x", "y"} and set(removed) == {"p"}


def test_locations_come_back_exactly_as_they_went_in():
    refs = [InlineRef({}), InlineRef({})]
    odd = [
        loc("a", ref=refs[0], key="5"),
        loc("b", ref=refs[1], key="6", inline="gASVBQAAAAAAAABLAi4="),
        loc("c", ref=None, key=None),
        loc("d", sha_=PENDING_SHA, key="7", ref=refs[0]),
        loc("e", sha_="not-a-hash", key="8"),              # kept whole
        loc("e2", sha_=hashlib.sha256(b"x").hexdigest()),  # another hash's length: kept whole
        loc("f", key="007"),                               # not a plain number: kept whole
        loc("g", sha_=sha("g").upper()),                   # upper-case hex: kept whole
        loc("h", sha_="0" * 32),                           # all zeros is not "pending"
    ]
    table = JoinTable(3, "fan")
    split = Scope({"items": loc("items")}, None, (), "fan")
    table.add(2, link("work", "12", Scope({a.name: a for a in odd}, split, ("zz",), "work")))
    table.add(0, link("work", "10", Scope({"a": loc("a", "0")}, split, (), "work")))
    table.add(1, link("other", "x-11", Scope({}, split, (), "other")))
    assert table.full
    assert table.own(2) == {a.name: a for a in odd}
    assert table.own(0) == {"a": loc("a", "0")}
    assert table.own(1) == {}
    assert [table.step_of(i) for i in range(3)] == ["work", "other", "work"]
    assert [table.task_id_of(i) for i in range(3)] == ["10", "x-11", "12"]
    assert [str(p.key) for p in table] == ["work/10", "other/x-11", "work/12"]
    assert table.pathspecs("F", "9") == ["F/9/work/10", "F/9/other/x-11", "F/9/work/12"]
    table.seal()
    view = table.view(2, {"alpha": loc("alpha")})
    assert set(view) == {"alpha", "items"} | {a.name for a in odd}
    assert table.pending_makers() == {"7"}


def test_the_spec_pickles_without_the_drivers_bookkeeping_and_reads_the_same():
    split = Scope({"items": loc("items")}, None, (), "fan")
    table = JoinTable(4, "fan")
    for i in range(4):
        table.add(i, link("work", str(20 + i), Scope({"out": loc("out", str(i), key=str(20 + i),
                                                                 inline=f"I{i}")},
                                                     split, ("items",) if i == 3 else (), "work")))
    back = pickle.loads(pickle.dumps(table.seal()))
    assert not hasattr(back, "_base_scopes") and not hasattr(back, "_ref_ix")
    for i in range(4):
        assert back.view(i) == table.view(i)
    assert "items" in back.view(0) and "items" not in back.view(3)  # input 3 deleted it
    assert back.step_names() == ["work"] * 4


def test_pending_hashes_are_found_and_resolved():
    split = Scope({"base": loc("base", sha_=PENDING_SHA, key="1")}, None, (), "fan")
    table = JoinTable(2, "fan")
    table.add(0, link("w", "5", Scope({"o": loc("o", sha_=PENDING_SHA, key="5")}, split,
                                      (), "w")))
    table.add(1, link("w", "6", Scope({"o": loc("o", "six", key="6")}, split, (), "w")))
    table.seal()
    assert table.pending_makers() == {"1", "5"}
    table.resolve_pending(lambda a: ArtifactLoc(a.name, sha(a.name), a.encoding, a.type,
                                                a.size, a.ref, a.key, a.inline))
    assert table.pending_makers() == set()
    assert table.view(0)["o"].sha == sha("o") and table.view(0)["base"].sha == sha("base")
    assert table.view(1)["o"].sha == sha("six")


def test_an_input_arriving_twice_is_a_bug_that_says_so():
    table = JoinTable(2, "fan")
    table.add(0, link("w", "5", Scope({}, None, (), "w")))
    with pytest.raises(RuntimeError, match="w/5 arrived twice"):
        table.add(0, link("w", "5", Scope({}, None, (), "w")))


def test_a_wide_join_costs_flat_arrays_not_objects_per_input():
    n = 100_000
    split = Scope({"items": loc("items")}, None, (), "fan")
    refs = [InlineRef({}) for _ in range(n // 1000)]
    scopes = [Scope({"out": loc("out", str(i), ref=refs[i // 1000], key=str(100 + i),
                                inline="gASVBQAAAAAAAABLAi4=")}, split, (), "work")
              for i in range(n)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = JoinTable(n, "fan")
    for i, scope in enumerate(scopes):
        table.add(i, link("work", str(100 + i), scope))
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    spec = pickle.dumps(table.seal())
    # About 25 bytes an input and 90 an artifact with its inline bytes; the objects this
    # replaces cost about 1.4 KB a split.
    assert kept < 200 * n, f"{kept / n:.0f} bytes an input"
    assert len(spec) < 150 * n, f"{len(spec) / n:.0f} bytes an input in the spec"
    assert not table.odd  # the datastore's own locations all fit the columns
    back = pickle.loads(spec)
    assert back.view(n - 1)["out"].key == str(100 + n - 1)
