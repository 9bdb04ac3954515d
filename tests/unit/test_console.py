"""A task's console copy is held until it ends, then shown in the order written; a task that
goes on past LIVE_AFTER_S after its first line, or holds HOLD_BYTES, goes live
(rayflow/runtime/console.py)."""

from __future__ import annotations

import io
import sys
import time

from rayflow.runtime import console
from rayflow.runtime.capture import captured_output


def _task(prefix: str, write):
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        co = captured_output(prefix, hold=True)
        with co:
            write()
        held = co.hold.take()
    finally:
        sys.stdout, sys.stderr = saved
    return held, out.getvalue(), err.getvalue()


def test_held_lines_come_back_in_the_order_written():
    def write():
        print("a")
        print("b", file=sys.stderr)
        print("c", end="")
        print("d")

    held, out, err = _task("[1/s/2] ", write)
    assert out == err == ""  # nothing reached the streams while the task ran
    shown_out, shown_err = io.StringIO(), io.StringIO()
    console.show(held, shown_out, shown_err)
    assert shown_out.getvalue() == "[1/s/2] a\n[1/s/2] cd\n"
    assert shown_err.getvalue() == "[1/s/2] b\n"
    merged = io.StringIO()
    console.show(held, merged, merged)
    assert merged.getvalue() == "[1/s/2] a\n[1/s/2] b\n[1/s/2] cd\n"


def test_a_long_task_goes_live(monkeypatch):
    monkeypatch.setattr(console, "LIVE_AFTER_S", 0.1)

    def write():
        print("early")
        time.sleep(1.0)  # the watcher looks every 0.25 s
        assert "early" in sys.stdout.real.getvalue()
        print("late")

    held, out, _ = _task("[1/s/2] ", write)
    assert held == () and out == "[1/s/2] early\n[1/s/2] late\n"


def test_a_task_that_holds_too_much_goes_live():
    def write():
        print("x" * (console.HOLD_BYTES + 1))
        print("after")

    held, out, _ = _task("[p] ", write)
    assert held == () and out.endswith("[p] after\n") and len(out) > console.HOLD_BYTES
