"""The media example end to end on CPU, with the model on a pool of actors that each hold half
of a (fake) GPU: the cuts it finds in synthetic clips, and a card with the scores."""

import os

from rayflow.cards import get_cards
from rayflow.client import Run, namespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "examples", "media", "flow.py")


def test_media_flow_finds_the_cuts_on_an_actor_pool(ray_session, datastore, tmp_path):
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    loaded = load_flow(FLOW)
    values = resolve_parameters(
        loaded.cls, {"clips": "6", "seconds": "3", "seed": "5", "folder": str(tmp_path)},
        config_values={"settings": '{"gpu": 0.5, "actors": 2, "cpu": 0.5}'})
    s = RunLoop(loaded, values, RunOptions(datastore_url=datastore, progress=False)).run()
    assert s.successful, s.failures
    namespace(None)
    run = Run(s.pathspec, datastore=datastore)
    m = run.data.metrics
    assert m["clips"] == 6 and m["frames"] == 6 * 72 and m["true_cuts"] > 6
    assert m["f1"] >= 0.9, m
    table = run["join"].task.data.cut_table
    assert table.column_names == ["clip", "frame", "score"] and table.num_rows == m["found_cuts"]
    sizes = [n for _, pool, n in s.pool_history if pool == "model"]
    assert 1 <= max(sizes) <= 2 and sizes[-1] == 0   # the pool ends with the run
    assert len({t["n_frames"].data for t in run["infer"]}) == 1
    (c,) = get_cards(run["end"].task, id="media")
    assert "Cut scores over the frames" in c.get() and "mark-line" in c.get()
