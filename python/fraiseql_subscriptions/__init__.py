"""Python integration for FraiseQL Subscriptions.

Publish events from a FraiseQL application, and subscribe to them from a
Python service:

- :func:`publish` writes an event inside the caller's PostgreSQL
  transaction (psycopg 3): it is delivered if and only if the transaction
  commits, exactly once (the node's PostgreSQL bridge forwards the outbox).
- :func:`publish_redis` publishes over Redis pub/sub (at most once, as
  Redis pub/sub is), for apps that already speak Redis.
- :func:`subscribe` is an async iterator over a subscription's results
  that reconnects and resumes from the last cursor by itself, so no event
  is lost or repeated across a node restart.
"""

from .publish import publish, publish_redis
from .client import (
    SubscriptionError,
    ConnectionRejected,
    Result,
    subscribe,
)

__all__ = [
    "publish",
    "publish_redis",
    "subscribe",
    "Result",
    "SubscriptionError",
    "ConnectionRejected",
]
