"""The CLI's wait for task output that Ray forwards late (cli/common.py): it ends as soon as
the lines the run's tasks printed have come through, and never waits past its limit."""

import sys
import threading
import time

from cli.common import ForwardedLines


def test_the_wait_ends_when_the_tasks_lines_are_in(capsys):
    with ForwardedLines() as forwarded:
        def ray_log_thread():
            time.sleep(0.2)
            for i in range(3):
                print(f"[work/{i}] line {i}")
            print("(not a task line) [x", file=sys.stderr)

        thread = threading.Thread(target=ray_log_thread)
        thread.start()
        t0 = time.monotonic()
        forwarded.wait_for(3, limit=5.0)
        waited = time.monotonic() - t0
        thread.join()
    assert forwarded.count == 3
    assert 0.15 < waited < 2.0, waited
    assert "[work/2] line 2" in capsys.readouterr().out  # still reaches the console


def test_lines_that_never_come_are_waited_for_no_longer_than_the_limit():
    with ForwardedLines() as forwarded:
        t0 = time.monotonic()
        forwarded.wait_for(5, limit=0.3)
        assert 0.25 < time.monotonic() - t0 < 2.0
    assert sys.stdout is not None and not hasattr(sys.stdout, "_counter")
