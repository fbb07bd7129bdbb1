"""Fixtures: a real fraiseql-node (built from this repository) with its
PostgreSQL and Redis bridges, against the machine's PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def node_bin(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("bin") / "fraiseql-node"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/fraiseql-node"], cwd=ROOT, check=True)
    return str(out)


@pytest.fixture(scope="session")
def services() -> None:
    import psycopg
    import redis

    try:
        psycopg.connect(DATABASE_URL, connect_timeout=5).close()
    except Exception as exc:  # noqa: BLE001 - any failure means the same to the reader
        pytest.fail(f"PostgreSQL at {DATABASE_URL} is unreachable ({exc}); start it "
                    "(pg_ctlcluster <version> main start) or set DATABASE_URL")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); start it (redis-server) or set REDIS_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A fraiseql-node process with both bridges on names of its own (an
    outbox schema and a Redis channel prefix), restartable on its address."""

    def __init__(self, binary: str, env: dict[str, str] | None = None):
        self.binary = binary
        self.env = env or {}
        self.data_dir = tempfile.mkdtemp(prefix="fraiseql-py-")
        suffix = secrets.token_hex(4)
        self.schema = f"fq_py_{suffix}"
        self.prefix = f"fqpy{suffix}"
        self.addr = f"127.0.0.1:{_free_port()}"
        self.url = f"ws://{self.addr}/graphql"
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []

    def start(self) -> None:
        env = dict(os.environ,
                   FRAISEQL_DATA_DIR=self.data_dir,
                   FRAISEQL_LISTEN=self.addr,
                   FRAISEQL_OPS_LISTEN="off",
                   FRAISEQL_BRIDGES_POSTGRES_ENABLED="true",
                   FRAISEQL_BRIDGES_POSTGRES_URL=DATABASE_URL,
                   FRAISEQL_BRIDGES_POSTGRES_SCHEMA=self.schema,
                   FRAISEQL_BRIDGES_POSTGRES_POLL_INTERVAL="100ms",
                   FRAISEQL_BRIDGES_REDIS_ENABLED="true",
                   FRAISEQL_BRIDGES_REDIS_URL=REDIS_URL,
                   FRAISEQL_BRIDGES_REDIS_PREFIX=self.prefix,
                   FRAISEQL_BRIDGES_REDIS_DISABLE_STREAMS="true",
                   **self.env)
        self.proc = subprocess.Popen([self.binary], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read(proc: subprocess.Popen) -> None:  # ends when the process closes stdout
            for line in proc.stdout:
                self.log.append(line)
                if "FraiseQL node ready" in line:
                    ready.set()

        threading.Thread(target=read, args=(self.proc,), daemon=True).start()
        if not ready.wait(60):
            self.stop()
            pytest.fail("the node was not ready in 60 s:\n" + "".join(self.log[-30:]))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # stop at once: clients get 1001
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _run_node(node_bin: str, env: dict[str, str] | None = None):
    n = Node(node_bin, env)
    # The outbox and fraiseql.publish(), as an operator creates them.
    subprocess.run([node_bin, "migrate", "--database-url", DATABASE_URL, "--schema", n.schema],
                   check=True, capture_output=True, text=True)
    n.start()
    yield n
    n.stop()
    n.drop()


@pytest.fixture
def node(node_bin, services):
    yield from _run_node(node_bin)


@pytest.fixture
def small_node(node_bin, services):
    """A node whose stream keeps 16 KiB: a dozen events of 1.5 KB push the
    oldest out (events up to 2 KiB)."""
    yield from _run_node(node_bin, {"FRAISEQL_NATS_MAX_BYTES": "16384",
                                    "FRAISEQL_LIMITS_MAX_EVENT_BYTES": "2048"})


@pytest.fixture
def pg():
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        yield conn
