"""The sandbox stack: a real PostgreSQL 15 cluster (with TimescaleDB preloaded where it is
installed), a real Redis server (AOF on), where its jar is installed a real QuestDB, and the
inference API stand-in serving a model that real git and DVC track, on 127.0.0.1, on free
ports, under a state directory of the checkout, seeded with a small trading data set and its
ledger. `inventories/local` describes it through sandbox.json.

The stack is `stack.Sandbox`; its servers are in `servers`, their processes and ports in
`processes`."""

from __future__ import annotations

from ..errors import SandboxError
from .processes import PG_BIN_DIRS, free_port, kill_pidfile, pg_bin, pid_alive, port_slice, read_pid, wait_for
from .servers import InferenceAPI, PostgresCluster, QuestDBServer, RedisServer, Server
from .stack import Sandbox

__all__ = ["PG_BIN_DIRS", "InferenceAPI", "PostgresCluster", "QuestDBServer", "RedisServer", "Sandbox",
           "SandboxError", "Server", "free_port", "kill_pidfile", "pg_bin", "pid_alive", "port_slice", "read_pid",
           "wait_for"]
