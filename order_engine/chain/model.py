"""What crosses the boundary between the engine and the chain: transactions, their
outcomes, pool states and the summary of each slot, and how they travel as JSON."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from decimal import Decimal

import attrs
import base58
import orjson

from order_engine.domain.routes import SwapLeg
from order_engine.formats import exact_json
from order_engine.routing.pools import ConstantProductPool, DynamicFeePool, Pool
from order_engine.routing.tokens import TOKENS

CONSTANT_PRODUCT, DYNAMIC_FEE = "constant_product", "dynamic_fee"


class TxStatus(enum.StrEnum):
    PENDING = "pending"
    LANDED = "landed"
    FAILED = "failed"
    EXPIRED = "expired"


class TxFailure(enum.StrEnum):
    SLIPPAGE = "slippage_exceeded"
    REFUSED = "dex_error"


@attrs.frozen
class Transaction:
    """A signed swap as sent to the chain: every leg lands, or none does."""

    signature: str
    order_id: uuid.UUID
    attempt: int
    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal
    min_amount_out: Decimal
    legs: tuple[SwapLeg, ...]
    built_slot: int


def build_transaction(
    order_id: uuid.UUID,
    attempt: int,
    dex: str,
    input_token: str,
    output_token: str,
    input_amount: Decimal,
    legs: tuple[SwapLeg, ...],
    min_amount_out: Decimal,
    built_slot: int,
) -> Transaction:
    """The transaction, with a Solana-shaped signature (base58 of 64 bytes) derived from
    everything in it: the same build always has the same signature, so the chain can
    refuse to run it twice, and an order can resend it after a crash."""
    material = json.dumps(
        [str(order_id), attempt, dex, exact_json.unstructure(legs), str(min_amount_out), built_slot]
    )
    signature = base58.b58encode(hashlib.sha512(material.encode()).digest()).decode()
    return Transaction(
        signature=signature,
        order_id=order_id,
        attempt=attempt,
        dex=dex,
        input_token=input_token,
        output_token=output_token,
        input_amount=input_amount,
        min_amount_out=min_amount_out,
        legs=legs,
        built_slot=built_slot,
    )


@attrs.frozen
class TxOutcome:
    """What the chain knows of a signature. `slot`: where it was applied or expired."""

    signature: str
    status: TxStatus
    slot: int | None = None
    amount_out: Decimal | None = None
    executed_price: Decimal | None = None
    failure: TxFailure | None = None
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.status is not TxStatus.PENDING


@attrs.frozen
class PoolState:
    """A pool as the chain stores it and as slot summaries carry it."""

    id: int
    dex: str
    token_a: str
    token_b: str
    reserve_a: Decimal
    reserve_b: Decimal
    kind: str
    fee_bps: int
    max_fee_bps: int
    variable_factor: Decimal
    start_price: Decimal

    def to_pool(self) -> Pool:
        token_a, token_b = TOKENS[self.token_a], TOKENS[self.token_b]
        if self.kind == CONSTANT_PRODUCT:
            return ConstantProductPool(
                self.dex, token_a, token_b, self.reserve_a, self.reserve_b, self.fee_bps
            )
        return DynamicFeePool(
            self.dex,
            token_a,
            token_b,
            self.reserve_a,
            self.reserve_b,
            base_fee_bps=self.fee_bps,
            max_fee_bps=self.max_fee_bps,
            variable_factor=self.variable_factor,
        )


def curve_of(pool: Pool) -> tuple[str, int, int, Decimal]:
    """(kind, fee_bps, max_fee_bps, variable_factor) of a pool, as the chain stores them."""
    if isinstance(pool, DynamicFeePool):
        return DYNAMIC_FEE, pool.base_fee_bps, pool.max_fee_bps, pool.variable_factor
    assert isinstance(pool, ConstantProductPool)
    return CONSTANT_PRODUCT, pool.fee_bps, pool.fee_bps, Decimal(0)


@attrs.frozen
class SlotSummary:
    """Published after a slot commits: everything an engine process needs to move its
    view forward by one slot and to learn the outcome of what it sent."""

    slot: int
    pools: tuple[PoolState, ...]
    """Every pool whose reserves changed in this slot, as they are now."""
    launched: tuple[PoolState, ...]
    """Pools that trade from this slot on."""
    outcomes: tuple[TxOutcome, ...]
    """Every transaction applied or expired in this slot."""


def encode_summary(summary: SlotSummary) -> str:
    """The slot's number on a line of its own, then the summary in JSON: a process that
    has the slot already (its producer, say) skips it without decoding it."""
    return f"{summary.slot}\n" + orjson.dumps(exact_json.unstructure(summary)).decode()


def _text(payload: str | bytes) -> str:
    return payload.decode() if isinstance(payload, bytes) else payload


def summary_slot(payload: str | bytes) -> int:
    return int(_text(payload).partition("\n")[0])


def decode_summary(payload: str | bytes) -> SlotSummary:
    return exact_json.structure(orjson.loads(_text(payload).partition("\n")[2]), SlotSummary)
