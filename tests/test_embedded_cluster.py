"""Tests of redisolar.embedded.cluster.LocalCluster: real clusters of redis-server processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redisolar.embedded import LocalCluster, ServerSpec
from redisolar.embedded.cluster import SLOTS, slot_ranges


def test_slot_ranges_cover_every_slot_once() -> None:
    ranges = slot_ranges(3)
    assert ranges == [(0, 5460), (5461, 10921), (10922, 16383)]
    assert sum(end - start + 1 for start, end in ranges) == SLOTS
    with pytest.raises(ValueError):
        slot_ranges(0)


@pytest.fixture(scope="module")
def failover_cluster(
    plain_spec: ServerSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """3 masters with one replica each (the failover test's shape), data under pytest's temp dir."""
    with LocalCluster(
        plain_spec, masters=3, replicas_per_master=1, data_dir=tmp_path_factory.mktemp("lc")
    ) as lc:
        yield lc


def test_cluster_serves_every_slot_from_its_masters(failover_cluster: LocalCluster) -> None:
    with failover_cluster.client() as client:
        for i in range(30):
            client.set(f"key:{i}", i)
        assert [client.get(f"key:{i}") for i in range(30)] == [str(i) for i in range(30)]
        info = client.cluster_info(target_nodes=client.get_random_node())
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == SLOTS
        assert int(info["cluster_known_nodes"]) == 6
        assert len(client.get_primaries()) == 3
    assert failover_cluster.primaries() == failover_cluster.nodes[:3]
    assert all((node.data_dir / "nodes.conf").exists() for node in failover_cluster.nodes if node.data_dir)


def test_kill_promotes_the_replica_and_keeps_replicated_writes(failover_cluster: LocalCluster) -> None:
    key = "replicated-key"
    with failover_cluster.client() as client:
        client.set(key, "kept")
        master = failover_cluster.master_for_key(key)
        with master.client() as direct:
            assert direct.wait(1, 5000) == 1  # the write reached the replica before the crash
        failover_cluster.kill(master)
        assert not master.is_running()
        failover_cluster.wait_ok()
        successor = failover_cluster.master_for_key(key)
        assert successor is not master
        assert successor in failover_cluster.nodes[3:]
        assert client.get(key) == "kept"  # redis-py refreshes its slot map by itself
    failover_cluster.start_node(master)
    failover_cluster.wait_ok()
    assert master not in failover_cluster.primaries()  # it came back as a replica of its successor
    assert len(failover_cluster.primaries()) == 3


def test_stack_cluster_runs_timeseries_per_shard(stack_spec: ServerSpec) -> None:
    with LocalCluster(stack_spec, masters=3) as cluster, cluster.client() as client:
        for site in range(6):
            client.execute_command("TS.ADD", f"ts:{{site:{site}}}", 1000, site)
        assert [client.execute_command("TS.GET", f"ts:{{site:{s}}}")[1] for s in range(6)] == [
            float(s) for s in range(6)
        ]
        shards = {cluster.master_for_key(f"ts:{{site:{s}}}").port for s in range(6)}
        assert len(shards) > 1  # the series really live on different masters


def test_stop_leaves_no_process(plain_spec: ServerSpec) -> None:
    cluster = LocalCluster(plain_spec, masters=2).start()
    pids = [node.pid for node in cluster.nodes]
    cluster.stop()
    assert all(node.pid is None for node in cluster.nodes)
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_cluster_that_cannot_form_raises_and_cleans_up(plain_spec: ServerSpec, tmp_path: Path) -> None:
    cluster = LocalCluster(plain_spec, masters=2, extra_args=["--no-such-option", "1"], data_dir=tmp_path)
    with pytest.raises(Exception, match="redis-server"):
        cluster.start(timeout=10)
    assert all(not node.is_running() for node in cluster.nodes)
