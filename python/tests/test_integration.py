"""fraiseql_subscriptions against a real node, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from conftest import REDIS_URL
from fraiseql_subscriptions import ConnectionRejected, SubscriptionError, publish, publish_redis, subscribe

QUERY = 'subscription($room: ID!) { messageAdded(room: $room) { id text } }'


def event(i: object, room: str = "py") -> dict:
    return {"id": str(i), "room": room, "text": f"m{i}", "author": {"name": "ann"}}


class Collector:
    """Runs a subscription in the background and keeps its results."""

    def __init__(self, url: str, **kw):
        self.ids: list[str] = []
        self.cursors: list[str | None] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run(url, kw))

    async def _run(self, url: str, kw: dict) -> None:
        try:
            async for r in subscribe(url, QUERY, {"room": "py"}, **kw):
                self.ids.append(r.data["messageAdded"]["id"])
                self.cursors.append(r.cursor)
        except BaseException as exc:  # kept for the test to report
            self.error = exc

    async def wait(self, pred, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.error is not None:
                raise AssertionError(f"the subscription failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.ids}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def warm_up(sub: Collector, publish_one) -> None:
    """Publishes until the subscription receives an event: it registers
    after connection_ack, asynchronously to the client."""
    for i in range(100):
        publish_one(f"warm{i}")
        try:
            await sub.wait(lambda: len(sub.ids) > 0, "a first event", timeout=0.5)
            return
        except AssertionError:
            if sub.error is not None:
                raise
    raise AssertionError("no event received after 100 publishes")


def pg_publisher(node, pg):
    def publish_one(i: object) -> None:
        with pg.transaction():
            publish(pg, "public", "chat.py", event(i), schema=node.schema)
    return publish_one


def test_publish_in_transaction(node, pg):
    async def main():
        sub = Collector(node.url)
        try:
            await warm_up(sub, pg_publisher(node, pg))
            class Rollback(Exception):
                pass
            with pytest.raises(Rollback):
                with pg.transaction():
                    publish(pg, "public", "chat.py", event("rolled-back"), schema=node.schema)
                    raise Rollback
            with pg.transaction():
                row = publish(pg, "public", "chat.py", event("committed"), schema=node.schema)
            assert row > 0
            await sub.wait(lambda: "committed" in sub.ids, "the committed event")
            assert "rolled-back" not in sub.ids
            assert sub.ids.count("committed") == 1
        finally:
            await sub.close()
    asyncio.run(main())


def test_publish_redis(node):
    r = redis.Redis.from_url(REDIS_URL)

    async def main():
        sub = Collector(node.url)
        try:
            await warm_up(sub, lambda i: publish_redis(r, "public", "chat.py", event(i), prefix=node.prefix))
            assert publish_redis(r, "public", "chat.py", event("via-redis"), prefix=node.prefix) >= 1
            await sub.wait(lambda: "via-redis" in sub.ids, "the event published over Redis")
        finally:
            await sub.close()
    asyncio.run(main())


def test_subscribe_resumes_across_restart(node, pg):
    """The node stops (1001) and starts again on its address; events are
    published before, during (into the outbox) and after: the client
    receives each once, in order."""
    publish_one = pg_publisher(node, pg)

    async def main():
        verdicts: list[dict] = []
        sub = Collector(node.url, on_resume=verdicts.append)
        try:
            await warm_up(sub, publish_one)
            for i in range(1, 4):
                publish_one(i)
            await sub.wait(lambda: "3" in sub.ids, "events 1-3")
            await asyncio.to_thread(node.stop)
            for i in range(4, 7):
                publish_one(i)  # in the outbox; forwarded when a node runs
            await asyncio.sleep(1)  # the client meets refused connections meanwhile
            await asyncio.to_thread(node.start)
            for i in range(7, 10):
                publish_one(i)
            await sub.wait(lambda: "9" in sub.ids, "events 4-9 after the restart", timeout=60)
            numbered = [x for x in sub.ids if not x.startswith("warm")]
            assert numbered == [str(i) for i in range(1, 10)], sub.ids
            assert len(set(sub.ids)) == len(sub.ids), f"duplicates: {sub.ids}"
            assert verdicts and all(v == {"verdict": "recovered"} for v in verdicts), verdicts
        finally:
            await sub.close()
    asyncio.run(main())


def test_subscription_errors_are_coded(node):
    async def main():
        with pytest.raises(SubscriptionError) as err:
            async for _ in subscribe(node.url, "subscription { messageAdded(room: \"r\") { nope } }"):
                pass
        assert err.value.code == "GRAPHQL_VALIDATION_FAILED"
        with pytest.raises(SubscriptionError) as err:
            async for _ in subscribe(node.url, QUERY, {"room": "py"}, cursor="AAAAAAAAAAAAAAAAAAAAAAAAAAAA"):
                pass
        assert err.value.code == "BAD_CURSOR"
    asyncio.run(main())


def test_subscribe_reports_a_gap(small_node, pg):
    """A cursor whose next events retention removed: the subscription
    reports the gap to on_resume and goes on with the events still stored,
    then live, instead of failing with CURSOR_EXPIRED (which it still does
    with resume_verdict=False)."""
    publish_one = pg_publisher(small_node, pg)

    def publish_big(i: int) -> None:
        with pg.transaction():
            publish(pg, "public", "chat.py", {**event(i), "pad": "x" * 1500}, schema=small_node.schema)

    async def main():
        first = Collector(small_node.url)
        try:
            await warm_up(first, publish_one)
            old = first.cursors[0]
            for i in range(1, 13):
                publish_big(i)  # pushes the warm-up events out of the stream
            await first.wait(lambda: "12" in first.ids, "the big events")
        finally:
            await first.close()
        verdicts: list[dict] = []
        sub = Collector(small_node.url, cursor=old, on_resume=verdicts.append)
        try:
            await sub.wait(lambda: "12" in sub.ids, "the events still stored")
            publish_one("last")
            await sub.wait(lambda: "last" in sub.ids, "a live event")
            assert [v["verdict"] for v in verdicts] == ["gap"], verdicts
            assert verdicts[0]["after"] == old and verdicts[0]["until"], verdicts
            stored = [int(x) for x in sub.ids[:-1]]
            assert sub.ids[-1] == "last" and stored and stored[0] > 1, sub.ids
            assert stored == list(range(stored[0], 13)), sub.ids
        finally:
            await sub.close()
        with pytest.raises(SubscriptionError) as err:
            async for _ in subscribe(small_node.url, QUERY, {"room": "py"}, cursor=old, resume_verdict=False):
                pass
        assert err.value.code == "CURSOR_EXPIRED"
    asyncio.run(main())
