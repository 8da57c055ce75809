import gc

from order_engine.memory import COLLECTOR_THRESHOLDS, tune_collector


def test_the_tuned_collector_leaves_startup_objects_out_and_runs_less_often() -> None:
    """What `serve` does once it listens: whatever exists then is frozen out of every
    collection, and a young collection waits for far more than CPython's 700
    allocations. Put back afterwards, for the rest of the test run."""
    before = gc.get_threshold()
    survivor = [object()]
    try:
        tune_collector()
        assert gc.get_freeze_count() > 0
        assert all(o is not survivor for o in gc.get_objects())
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert COLLECTOR_THRESHOLDS[0] > 10 * 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
