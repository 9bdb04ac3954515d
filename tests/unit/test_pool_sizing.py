"""An actor pool's sizing, without Ray: it grows only when every actor that is up is full and
batches wait, never past max; a batch never goes to an actor still starting; it ends actors
idle past the time-out down to min; the pool log records requested, up, down and died."""

from rayflow.runtime.pools import PoolConfig, PoolLog, _Pool


class _Ready:
    def remote(self):
        return "ready-ref"


class _Handle:
    def __init__(self, pool, index):
        self.args = (pool, index)
        self.ready = _Ready()


class _Cls:
    def options(self, **opts):
        # Ray never restarts a pool's actor: the executor sees it die and replaces it.
        assert opts["max_restarts"] == 0 and opts["max_concurrency"] == 1
        return self

    def remote(self, pool, index):
        return _Handle(pool, index)


class _Ray:
    def __init__(self):
        self.killed = []

    def kill(self, handle, no_restart=True):
        self.killed.append(handle.args[1])


def _pool(min_=0, max_=3, per_actor=2, idle=5.0):
    log = PoolLog()
    cfg = PoolConfig("p", min_, max_, idle, per_actor, {"num_cpus": 1})
    return _Pool(cfg, _Cls(), log), log


def _come_up(pool):
    for actor in pool.actors:
        if not actor.up:
            pool.is_up(actor, pid=1000 + actor.index)


def _take(pool, n):
    """n batch slots, letting each requested actor come up when the pool asks for one."""
    got = []
    for _ in range(2 * n + 2):
        actor = pool.free_actor()
        if actor is None:
            assert all(a.in_flight == 0 for a in pool.actors if not a.up)
            _come_up(pool)
            actor = pool.free_actor()
            if actor is None:
                break
        actor.in_flight += 1
        got.append(actor)
        if len(got) == n:
            break
    return got


def test_grows_only_when_full_and_never_past_max():
    pool, log = _pool(max_=3, per_actor=2)
    pool.queue = ["batch"] * 10
    got = _take(pool, 10)
    # Two slots per actor: 0, then 0 again before a second actor, ... up to three actors.
    assert sorted(a.index for a in got) == [0, 0, 1, 1, 2, 2] and len(pool.actors) == 3
    assert pool.free_actor() is None and len(pool.actors) == 3     # full, and at max
    assert [n for _, _, n in log.history] == [1, 2, 3]
    assert [e[3] for e in log.events] == ["requested", "up"] * 3


def test_a_batch_never_goes_to_an_actor_still_starting():
    pool, _ = _pool(max_=2, per_actor=1)
    pool.queue = ["batch"]
    assert pool.free_actor() is None and len(pool.actors) == 1     # requested, not up
    assert pool.free_actor() is None and len(pool.actors) == 1     # one starting is enough
    _come_up(pool)
    assert pool.free_actor() is pool.actors[0]


def test_shrinks_idle_actors_down_to_min():
    ray = _Ray()
    pool, log = _pool(min_=1, max_=3, per_actor=1, idle=5.0)
    pool.queue = ["batch"] * 3
    actors = _take(pool, 3)
    pool.queue = []
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
    pool.close(ray, "the run ended")
    assert pool.actors == [] and log.history[-1][2] == 0
    assert [e[3] for e in log.events].count("down") == 3


def test_a_death_is_recorded_once():
    pool, log = _pool(max_=2, per_actor=1)
    pool.queue = ["batch"] * 2
    a, b = _take(pool, 2)
    pool.died(a, "its process was killed")
    pool.died(a, "its process was killed")                 # seen twice, recorded once
    assert pool.actors == [b]
    assert [(e[2], e[3]) for e in log.events if e[3] == "died"] == [(a.index, "died")]
    assert log.history[-1][2] == 1
