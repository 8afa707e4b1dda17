"""The cluster tier (`make test-cluster`): real redis-server processes on loopback free ports (topology.py).

- `redis_cluster`: a Redis Cluster of 6 nodes, 3 masters + 3 replicas (`redis-cli --cluster create ...
  --cluster-replicas 1`), cluster-node-timeout 1000 ms so a master's failover completes in a few seconds.
- `redis_sentinel`: one master, one replica and 3 Sentinels (`redis-server --sentinel`), down-after 1000 ms.

Every node has a password (REDIS_URL carries it) and appendonly yes; the gateway WAITs for one replica after each
audit append (store.redis.HaAddress.wait). Each process runs in its own session and is stopped at the end.
"""
from __future__ import annotations

import os

import pytest
from topology import Cluster, SentinelSetup

# The tier runs on its own (`make test-cluster` sets CLUSTER_TIER=1), not inside `make test`'s plain `pytest`.
collect_ignore_glob = [] if os.environ.get("CLUSTER_TIER") == "1" else ["test_*.py"]


def _running(setup):
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    yield from _running(Cluster(tmp_path_factory.mktemp("cluster")))


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory):
    yield from _running(SentinelSetup(tmp_path_factory.mktemp("sentinel")))
