"""The engine's end-to-end scenarios on a three-primary Redis Cluster.

The tests are the ones of ``tests/integration/engine`` (real ``runnel worker`` processes,
every event counted: lost, duplicated, out of order), collected here again so they run
with this folder's fixtures: the cluster's URL, hence the cluster key layout and adapters.

The effectively-once scenarios run the outbox path here: the totals pipeline's input
and output partitions are in different slots, so every output is committed to its input
partition's outbox and relayed; the idempotent sender's keys are in their partitions'
slots.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from runnel.adapters.redis.cluster import slot_of
from tests.integration.engine.apps import totals as totals_app
from tests.integration.engine.conftest import Spawn
from tests.integration.engine.harness import wait_for
from tests.integration.engine.test_coordination_processes import (
    test_a_killed_worker_with_two_second_leases_is_recovered_within_three_seconds,
    test_three_joins_then_two_graceful_leaves_under_load_process_each_event_once_in_order,
)
from tests.integration.engine.test_effectively_once_processes import (
    _outputs,
    assert_exact,
    audit,
    drained,
    orders,
    send_orders,
    test_a_kill_loop_leaves_exactly_one_output_per_order,
    test_a_sender_killed_mid_send_and_run_again_with_its_key_leaves_no_duplicates,
    test_sigkill_and_sigstop_past_the_lease_leave_exactly_one_output_per_order,
)
from tests.integration.engine.test_resize_processes import (
    test_growing_a_stream_mid_stream_loses_duplicates_and_reorders_nothing,
)
from tests.integration.engine.test_worker_processes import (
    test_a_failed_and_a_corrupt_entry_are_dead_lettered_with_their_fields_and_error,
    test_a_full_lossless_partition_refuses_sends_and_drops_nothing_unacknowledged,
    test_a_join_and_a_graceful_leave_mid_stream_process_everything_exactly_once,
    test_a_killed_workers_partitions_are_processed_by_the_next_without_loss,
    test_a_worker_paused_past_its_leases_loses_nothing_and_reorders_nothing,
    test_sigterm_drains_gracefully_and_a_new_worker_finishes_with_zero_duplicates,
    test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order,
)

__all__ = [
    "test_a_failed_and_a_corrupt_entry_are_dead_lettered_with_their_fields_and_error",
    "test_a_full_lossless_partition_refuses_sends_and_drops_nothing_unacknowledged",
    "test_a_join_and_a_graceful_leave_mid_stream_process_everything_exactly_once",
    "test_a_kill_loop_leaves_exactly_one_output_per_order",
    "test_a_killed_worker_with_two_second_leases_is_recovered_within_three_seconds",
    "test_a_killed_workers_partitions_are_processed_by_the_next_without_loss",
    "test_a_sender_killed_mid_send_and_run_again_with_its_key_leaves_no_duplicates",
    "test_a_worker_paused_past_its_leases_loses_nothing_and_reorders_nothing",
    "test_growing_a_stream_mid_stream_loses_duplicates_and_reorders_nothing",
    "test_sigkill_and_sigstop_past_the_lease_leave_exactly_one_output_per_order",
    "test_sigterm_drains_gracefully_and_a_new_worker_finishes_with_zero_duplicates",
    "test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order",
    "test_three_joins_then_two_graceful_leaves_under_load_process_each_event_once_in_order",
]


async def test_outputs_in_other_slots_are_relayed_once_through_a_sigkill(
    spawn: Spawn, client: Any, app_name: str, redis_url: str
) -> None:
    """Every output of the totals pipeline is in another slot than its input (their
    partitions' hash tags differ): each is committed to its input partition's outbox
    and relayed. A worker SIGKILLed mid-run leaves outbox entries committed and not yet
    relayed, or relayed and not yet deleted; its partitions' next owners relay them, and
    the destination's idempotency check drops what was appended already."""
    _, orders_stream, totals = totals_app.build(app_name, redis_url)
    pairs = [
        (n, m)
        for n in range(orders_stream.partition_count)
        for m in range(totals.partition_count)
        if slot_of(orders_stream.keys.stream(n)) == slot_of(totals.keys.stream(m))
    ]
    assert pairs == [], "this test needs every output in another slot than its input"
    env = {"ENGINE_TEST_DELAY": "0.005"}
    workers = [spawn("totals", env=env) for _ in range(3)]
    await wait_for(
        lambda: sum(len(w.acquired("orders")) for w in workers) >= 8,
        "the partitions acquired",
        workers=workers,
    )
    sent = orders(1500)
    sender = asyncio.create_task(send_orders(app_name, redis_url, sent))
    await wait_for(lambda: _outputs(client, app_name, 400, redis_url), "400 outputs")
    workers[0].send_signal(signal.SIGKILL)
    survivors = [*workers[1:], spawn("totals", env=env)]
    await sender
    await wait_for(
        lambda: drained(client, app_name, len(sent), redis_url),
        "every order committed",
        within=60,
        workers=survivors,
    )
    result = await audit(client, app_name, sent, redis_url)
    outboxes = [
        int(await client.xlen(orders_stream.keys.outbox("running_totals", n)))
        for n in range(orders_stream.partition_count)
    ]
    relay_keys = 0
    for m in range(totals.partition_count):
        tag = totals.keys.partition_tag(m)
        relay_keys += len([k async for k in client.scan_iter(match=f"__rlay:{{{tag}}}.*")])
    print(
        f"effectively-once on Redis Cluster, outbox path, 1 SIGKILL: {result.line()}, "
        f"outbox entries left {sum(outboxes)}, relay keys {relay_keys}"
    )
    assert_exact(result)
    assert outboxes == [0] * orders_stream.partition_count
    assert relay_keys == len(sent)  # one relayed outbox entry per order, none twice
