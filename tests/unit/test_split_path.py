"""The lean parts of a split's path in the worker (issue 32): what each split no longer pays
for (a system call, a thread, a type check) still gives the same result. No Ray."""

from __future__ import annotations

import io
import os
import sys
import threading

import pytest

from rayflow.datastore.artifact_store import ArtifactStore
from rayflow.datastore.cas import blob_hash
from rayflow.datastore.serializers import serialize
from rayflow.runtime import console, crash
from rayflow.runtime.capture import FdCapture, captured_output
from rayflow.runtime.crash import BatchSpool
from rayflow.runtime.process_stats import process_id


@pytest.fixture
def spool(tmp_path, monkeypatch):
    monkeypatch.setattr(crash, "spool_root", lambda: str(tmp_path))
    sp = BatchSpool("F", "1", "work", "10", 0)
    sp.open()
    yield sp
    sp.close(remove=True)


def test_the_running_task_is_named_in_place_not_by_a_line_a_split(spool):
    for task_id in ("10", "11", "12"):
        spool.task_started(task_id)
    spool.line("stdout", "12", "hello")
    with open(spool.path) as fh:
        text = fh.read()
    assert text.count("task|") == 1  # one mapped line, rewritten: no write a split
    # What a process that died in task 12 leaves: faulthandler's report after it.
    with open(spool.path, "a") as fh:
        fh.write("Fatal Python error: Segmentation fault\n\nCurrent thread:\n")
    found = BatchSpool("F", "1", "work", "10", 0)
    found.path = spool.path
    got = found.previous_crash()
    assert got.task_id == "12" and got.signal_name == "SIGSEGV"
    assert got.stdout == ["hello"]


def test_a_task_id_longer_than_the_slot_is_still_named(spool):
    spool.task_started("1" * (crash.TASK_SLOT + 5))
    with open(spool.path, "a") as fh:
        fh.write("Fatal Python error: Aborted\n")
    assert spool.previous_crash().task_id == "1" * (crash.TASK_SLOT + 5)


@pytest.mark.parametrize("value", [0, 7, -3, 2**80, 1.5, float("nan"), 1j, True, None, "",
                                   "text", "x" * 1000, b"bytes", b"y" * 1000])
def test_a_plain_value_is_encoded_as_the_general_path_encodes_it(value):
    enc = ArtifactStore(None, compress=True).encode("v", value)
    ser = serialize(value)  # the general path
    assert (enc.info.type, enc.info.encoding) == (ser.type, ser.encoding)
    assert enc.info.sha == blob_hash(ser.data)
    assert enc.info.size == len(ser.data)
    assert (enc.data is None) == (enc.info.inline is not None)


class Count(int):
    pass


def test_a_subclass_of_a_plain_type_keeps_its_own_type_name():
    enc = ArtifactStore(None, compress=True).encode("v", Count(3))
    assert enc.info.type.endswith("Count")


def test_one_poller_thread_serves_every_batch_of_a_process():
    def pollers():
        return [t for t in threading.enumerate() if t.name == "rayflow-fd-capture"]

    for _ in range(3):
        with FdCapture() as cap, captured_output("[s/1] ", None, cap) as (out, _err):
            os.write(1, b"at the fd level\n")
        assert out.getvalue() == "at the fd level\n"
    assert len(pollers()) == 1


def test_a_forked_child_reports_its_own_pid():
    assert process_id() == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, str(process_id()).encode())
        os._exit(0)
    os.close(write)
    child = int(os.read(read, 64))
    os.waitpid(pid, 0)
    assert child == pid != os.getpid()


def test_a_batch_reuses_one_capture_and_each_task_keeps_its_own_log():
    """One pair of Tees serves a batch's tasks (made once, re-armed per task): each task's log,
    prefix, --max-log-size room, console hold and fd-level output stay its own."""
    sunk, logs, tees = [], [], None
    with FdCapture() as cap:
        output = captured_output("", None, cap, limit=20)
        for task in ("1", "2"):
            def sink(stream, text, task=task):
                sunk.append((task, stream, text))

            with output.rearm(f"[r/s/{task}] ", sink, hold=True) as (out, err):
                print(f"task {task}")
                print("x" * 40)  # past the room the log has left: the log stops here
                print(f"err {task}", file=sys.stderr)
                os.write(1, f"fd {task}\n".encode())
            tees = tees or (out, err)
            assert (out, err) == tees  # the same Tees, not a new pair per task
            shown = io.StringIO(), io.StringIO()
            console.show(output.hold.take(), *shown)
            logs.append((out.getvalue(), err.getvalue(), shown[0].getvalue(),
                         shown[1].getvalue()))
    for task, (log_out, log_err, shown_out, shown_err) in zip(("1", "2"), logs):
        # each task had the whole --max-log-size room, and only its own lines
        assert log_out == f"task {task}\n[TRUNCATED - MAXIMUM LOG FILE SIZE REACHED]\n"
        assert log_err == f"err {task}\n"
        p = f"[r/s/{task}] "
        assert shown_out == f"{p}task {task}\n{p}{'x' * 40}\n{p}fd {task}\n"
        assert shown_err == f"{p}err {task}\n"
    assert {(t, s) for t, s, _ in sunk} == {("1", "stdout"), ("1", "stderr"),
                                            ("2", "stdout"), ("2", "stderr")}
