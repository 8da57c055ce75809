"""The group commit's batches: calls of one turn together, and calls that can spare time
gathered over it."""

from __future__ import annotations

import asyncio

from order_engine.batch import Batcher


class Recorder:
    """A batch function that remembers each batch and when it started; while `hold` is
    clear, a batch stays in flight."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started: list[float] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(items)
        self.started.append(asyncio.get_running_loop().time())
        await self.hold.wait()
        return [item.upper() for item in items]


async def test_calls_of_one_turn_share_a_batch_and_the_next_turn_starts_another() -> None:
    run = Recorder()
    batcher = Batcher(run)
    first = [batcher.submit(x) for x in "ab"]
    assert [await f for f in first] == ["A", "B"]
    assert await batcher("c") == "C"
    assert run.batches == [["a", "b"], ["c"]]


async def test_calls_that_can_spare_time_wait_for_it_and_go_as_one_batch() -> None:
    run = Recorder()
    batcher = Batcher(run)
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    futures = []
    for x in "abc":
        futures.append(batcher.submit(x, within_s=0.05))
        await asyncio.sleep(0)  # each in a turn of its own
    assert [await f for f in futures] == ["A", "B", "C"]
    assert run.batches == [["a", "b", "c"]]
    # The first call's time decides; the clock's resolution is the only slack.
    assert run.started[0] >= asked_at + 0.05 - 0.001


async def test_a_call_that_cannot_wait_takes_the_waiting_ones_along() -> None:
    run = Recorder()
    batcher = Batcher(run)
    patient = [batcher.submit(x, within_s=60) for x in "ab"]
    await asyncio.sleep(0)
    assert run.batches == []
    assert await batcher("c") == "C"
    assert [await f for f in patient] == ["A", "B"]
    assert run.batches == [["a", "b", "c"]]


async def test_a_patient_call_behind_a_busy_key_goes_once_the_batch_ends() -> None:
    """One key is in one batch at a time: a call for it whose time comes while a batch
    holds the key waits for that batch to end, and is not lost."""
    run = Recorder()
    run.hold.clear()
    batcher = Batcher(run, key=lambda item: item[0])
    first = batcher.submit("k1")
    await asyncio.sleep(0)
    assert run.batches == [["k1"]]
    second = batcher.submit("k2", within_s=0.01)
    # Time itself is under test: the second call's time passes while the key is busy.
    await asyncio.sleep(0.03)
    assert run.batches == [["k1"]]
    run.hold.set()
    assert await first == "K1"
    assert await asyncio.wait_for(second, 1) == "K2"
    assert run.batches == [["k1"], ["k2"]]
