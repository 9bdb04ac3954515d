"""An actor pool's sizing, without Ray: it grows only when every actor is full, never past
max, and ends actors idle past the time-out down to min."""

from rayflow.runtime.pool_executor import PoolConfig, _Pool


class _Handle:
    def __init__(self, pool, index):
        self.args = (pool, index)


class _Cls:
    def options(self, **opts):
        assert opts["max_restarts"] >= 1 and opts["max_concurrency"] == 1
        return self

    def remote(self, pool, index):
        return _Handle(pool, index)


class _Ray:
    def __init__(self):
        self.killed = []

    def kill(self, handle, no_restart=True):
        self.killed.append(handle.args[1])


def _pool(min_=0, max_=3, per_actor=2, idle=5.0):
    history = []
    cfg = PoolConfig("p", min_, max_, idle, per_actor, {"num_cpus": 1})
    return _Pool(cfg, _Cls(), history), history


def test_grows_only_when_full_and_never_past_max():
    pool, history = _pool(max_=3, per_actor=2)
    got = []
    for _ in range(7):
        actor = pool.free_actor()
        if actor is None:
            break
        actor.in_flight += 1
        got.append(actor.index)
    # Two slots per actor: 0, then 0 again before a second actor, ... up to three actors.
    assert sorted(got) == [0, 0, 1, 1, 2, 2] and len(pool.actors) == 3
    assert pool.free_actor() is None                      # full, and at max
    assert [n for _, _, n in history] == [1, 2, 3]


def test_shrinks_idle_actors_down_to_min():
    ray = _Ray()
    pool, history = _pool(min_=1, max_=3, per_actor=1, idle=5.0)
    actors = []
    for _ in range(3):
        actors.append(pool.free_actor())
        actors[-1].in_flight += 1
    for a in actors:
        a.in_flight, a.last_busy = 0, 100.0
    actors[2].in_flight = 1                                # still busy
    pool.shrink(now=103.0, ray=ray)
    assert len(pool.actors) == 3                           # not idle long enough
    pool.shrink(now=106.0, ray=ray)
    # Both idle actors go; the busy one stays, and it alone keeps the pool at min=1.
    assert ray.killed == [0, 1] and pool.actors == [actors[2]]
    actors[2].in_flight = 0
    pool.shrink(now=200.0, ray=ray)
    assert pool.actors == [actors[2]]                      # never below min
    pool.close(ray)
    assert pool.actors == [] and history[-1][2] == 0
