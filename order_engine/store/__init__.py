"""The engine's SQL: orders and their events, idempotency keys. Every change is
committed, then published."""
