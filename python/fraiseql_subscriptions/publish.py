"""Publishing: in a PostgreSQL transaction, or over Redis pub/sub."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


class _Executor(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Any: ...


def publish(
    conn: _Executor,
    tenant: str,
    topic: str,
    data: Any,
    *,
    schema: str = "fraiseql",
) -> int:
    """Publish ``data`` to ``topic`` of ``tenant`` in the caller's transaction.

    ``conn`` is a psycopg 3 connection or cursor (sync). The event is written
    to the outbox by ``<schema>.publish()`` (created by ``fraiseql-node
    migrate``, or by the node with ``bridges.postgres.migrate: true``) and
    is delivered to subscribers after the transaction commits; a rolled
    back transaction publishes nothing. Returns the outbox row id.

    ``data`` is any JSON-serialisable value, or a ``str`` of JSON.
    """
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema {schema!r}: want a lower-case SQL identifier")
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    cur = conn.execute(f"SELECT {schema}.publish(%s, %s, %s::jsonb)", (tenant, topic, body))
    row = cur.fetchone()
    return int(row[0])


def publish_redis(
    client: Any,
    tenant: str,
    topic: str,
    data: Any,
    *,
    prefix: str = "fraiseql",
) -> int:
    """Publish ``data`` over Redis pub/sub on ``<prefix>:<tenant>:<topic>``.

    ``client`` is a redis-py client (``redis.Redis``). The node's Redis
    bridge forwards it; pub/sub is at most once: an event published while
    no bridge listens is lost. Returns the number of Redis subscribers that
    received it (0 when no bridge listens).
    """
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return int(client.publish(f"{prefix}:{tenant}:{topic}", body))
