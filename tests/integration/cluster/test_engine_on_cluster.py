"""The engine's end-to-end scenarios on a three-primary Redis Cluster.

The tests are the ones of ``tests/integration/engine`` (real ``runnel worker`` processes,
every event counted: lost, duplicated, out of order), collected here again so they run
with this folder's fixtures: the cluster's URL, hence the cluster key layout and adapters.
"""

from __future__ import annotations

from tests.integration.engine.test_coordination_processes import (
    test_a_killed_worker_with_two_second_leases_is_recovered_within_three_seconds,
    test_three_joins_then_two_graceful_leaves_under_load_process_each_event_once_in_order,
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
    "test_a_killed_worker_with_two_second_leases_is_recovered_within_three_seconds",
    "test_a_killed_workers_partitions_are_processed_by_the_next_without_loss",
    "test_a_worker_paused_past_its_leases_loses_nothing_and_reorders_nothing",
    "test_growing_a_stream_mid_stream_loses_duplicates_and_reorders_nothing",
    "test_sigterm_drains_gracefully_and_a_new_worker_finishes_with_zero_duplicates",
    "test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order",
    "test_three_joins_then_two_graceful_leaves_under_load_process_each_event_once_in_order",
]
