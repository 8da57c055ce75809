"""The trigger index: resting orders in memory, arranged so that a slot looks only at the
ones its prices may fire. Pure: no I/O, no clock.

Limit orders are kept per pair and side (input token, output token), sorted by key,
which is their limit price until a check finds that their own size keeps them from
firing at the pair's best price; then it is raised by what their size costs (see
`raise_key`). A pair's best price now is a bound no route beats (chain/prices.py), so
the orders whose key it reaches are a prefix of the pair's list, found by bisection; the
others cannot fire. Sniper orders are kept by the token they wait for, until a pool of
it launches. Every order is also in a heap by deadline, for expiry.

Keys and prices are floats: converting two Decimals to float keeps their order (a ≤ b
gives float(a) ≤ float(b)), so no order that might fire is left out; those that a
float rounds in are checked exactly, like every other candidate.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import uuid
from collections.abc import Iterator

from order_engine.domain.orders import OrderType, RestingOrder

Pair = tuple[str, str]
# A heap with more dead entries than this many times its live ones is compacted.
_COMPACT_RATIO = 2
_COMPACT_MIN = 1024


class _Entry:
    """An order in the index: `number` breaks ties of key and deadline (first come,
    first checked); `key` is where it sits in its pair's list, None when it is not in one
    (a sniper waiting for a launch, or an order taken out to be checked)."""

    __slots__ = ("key", "number", "order")

    def __init__(self, order: RestingOrder, number: int) -> None:
        self.order = order
        self.number = number
        self.key: float | None = None


def _deadline(order: RestingOrder) -> float:
    return math.inf if order.expires_at is None else order.expires_at.timestamp()


class TriggerIndex:
    def __init__(self, launches: dict[str, int] | None = None) -> None:
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._books: dict[Pair, list[tuple[float, int, _Entry]]] = {}
        self._snipers: dict[str, dict[uuid.UUID, _Entry]] = {}
        self._deadlines: list[tuple[float, int, _Entry]] = []
        self._raised: dict[uuid.UUID, _Entry] = {}
        self._due: list[RestingOrder] = []
        self._launches: dict[str, int] = dict(launches or {})
        self._numbers = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._entries

    def __iter__(self) -> Iterator[RestingOrder]:
        return (entry.order for entry in self._entries.values())

    def add(self, order: RestingOrder) -> bool:
        """Index a resting order; False if it is in already. A limit order goes to its
        pair's list; a sniper to its token's, or among the due ones if a pool of its token
        launched after it began resting."""
        if order.id in self._entries:
            return False
        entry = _Entry(order, next(self._numbers))
        self._entries[order.id] = entry
        if order.expires_at is not None:
            heapq.heappush(self._deadlines, (_deadline(order), entry.number, entry))
        if order.type is OrderType.SNIPER:
            if self._launches.get(order.output_token, -1) > order.rest_slot:
                self._due.append(order)
            else:
                self._snipers.setdefault(order.output_token, {})[order.id] = entry
        else:
            assert order.limit_price is not None, "a limit order has a limit"
            self._insert(entry, float(order.limit_price))
        return True

    def discard(self, order_id: uuid.UUID) -> RestingOrder | None:
        """Take an order out for good (it fired, expired or left `waiting`)."""
        entry = self._entries.pop(order_id, None)
        if entry is None:
            return None
        self._take_out(entry)
        waiting = self._snipers.get(entry.order.output_token)
        if waiting is not None:
            waiting.pop(order_id, None)
            if not waiting:
                del self._snipers[entry.order.output_token]
        self._compact()
        return entry.order

    def pairs(self) -> list[Pair]:
        """The pairs (input token, output token) that have limits in the index."""
        return list(self._books)

    def crossed(self, pair: Pair, price: float) -> list[RestingOrder]:
        """Take out of `pair`'s list every order whose key `price` reaches, in key order;
        they stay in the index, to be fired, discarded or put back."""
        book = self._books.get(pair)
        if not book:
            return []
        end = bisect.bisect_right(book, (price, math.inf))
        taken = book[:end]
        del book[:end]
        if not book:
            del self._books[pair]
        for _, _, entry in taken:
            entry.key = None
        return [entry.order for _, _, entry in taken]

    def put_back(self, order: RestingOrder) -> None:
        """Return a checked order to its pair's list at its limit."""
        assert order.limit_price is not None
        entry = self._entries[order.id]
        self._take_out(entry)
        self._insert(entry, float(order.limit_price))

    def raise_key(self, order: RestingOrder, *, best: float, achieved: float) -> None:
        """Return a checked order whose own size kept it from firing: the pair's best
        price `best` reached its limit, but its route paid only `achieved` a unit. It
        is checked again once the best price has risen by that shortfall (or at the next
        launch, which may have deepened the pair)."""
        assert order.limit_price is not None
        entry = self._entries[order.id]
        self._take_out(entry)
        limit = float(order.limit_price)
        key = best * limit / achieved if achieved > 0 else best * 2
        self._insert(entry, max(limit, key))

    def wait_for_launch(self, order: RestingOrder) -> None:
        """Return a sniper that no route could serve yet to its token's list."""
        entry = self._entries[order.id]
        self._take_out(entry)
        self._snipers.setdefault(order.output_token, {})[order.id] = entry

    def launched(self, token: str, slot: int) -> list[RestingOrder]:
        """A pool trading `token` launched in `slot`: take out the snipers of the token
        that were resting before it; put back every raised key at its limit."""
        self._launches[token] = max(slot, self._launches.get(token, -1))
        for entry in list(self._raised.values()):
            self.put_back(entry.order)
        waiting = self._snipers.get(token)
        if not waiting:
            return []
        fired = [e for e in waiting.values() if e.order.rest_slot < slot]
        for entry in fired:
            del waiting[entry.order.id]
        if not waiting:
            del self._snipers[token]
        return [entry.order for entry in fired]

    def check_later(self, order: RestingOrder) -> None:
        """Return a checked order that could not be decided, to be checked at the next
        pass whatever the prices."""
        entry = self._entries[order.id]
        self._take_out(entry)
        self._due.append(order)

    def due(self) -> list[RestingOrder]:
        """Orders to check now: snipers added after the launch they waited for, and orders
        left for later."""
        due, self._due = self._due, []
        return [order for order in due if order.id in self._entries]

    def expired(self, now: float) -> list[RestingOrder]:
        """Take out for good every order whose deadline is at or before `now` (epoch s)."""
        gone: list[RestingOrder] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, entry = heapq.heappop(self._deadlines)
            if self._entries.get(entry.order.id) is entry:
                self.discard(entry.order.id)
                gone.append(entry.order)
        return gone

    def _insert(self, entry: _Entry, key: float) -> None:
        order = entry.order
        assert order.limit_price is not None
        entry.key = key
        bisect.insort(self._books.setdefault(order.pair, []), (key, entry.number, entry))
        if key > float(order.limit_price):
            self._raised[order.id] = entry

    def _take_out(self, entry: _Entry) -> None:
        """Out of its pair's list, if it is in it."""
        self._raised.pop(entry.order.id, None)
        if entry.key is None:
            return
        book = self._books[entry.order.pair]
        at = bisect.bisect_left(book, (entry.key, entry.number))
        assert book[at][2] is entry
        del book[at]
        if not book:
            del self._books[entry.order.pair]
        entry.key = None

    def _compact(self) -> None:
        """Drop the deadlines of orders that left, once they outnumber the live ones."""
        if len(self._deadlines) > _COMPACT_RATIO * len(self._entries) + _COMPACT_MIN:
            self._deadlines = [d for d in self._deadlines if d[2].order.id in self._entries]
            heapq.heapify(self._deadlines)
