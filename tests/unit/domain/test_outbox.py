"""Outbox entries and the names of the outbox path's keys (pure functions)."""

from __future__ import annotations

import pytest

from runnel.domain.keys import Keys, relay_key
from runnel.domain.outbox import (
    CAP_FIELD,
    DESTINATION_FIELD,
    PATHS,
    outbox_fields,
    parse_outbox_fields,
    path_of,
)


def test_an_outbox_entry_keeps_destination_cap_window_and_fields_in_order() -> None:
    record = {b"data": b"{}", b"__traceparent": b"00-ab-cd-01"}
    fields = outbox_fields("__strm:{a.t.1}", (50, "lossy", "__lost:{a.t.1}"), 3600.0, record)
    entry = parse_outbox_fields(fields)
    assert entry.destination == "__strm:{a.t.1}"
    assert entry.cap == (50, "lossy", "__lost:{a.t.1}")
    assert entry.window == 3600.0
    assert list(entry.fields.items()) == list(record.items())
    uncapped = parse_outbox_fields(outbox_fields("__strm:{a.t.2}", None, 1.0, record))
    assert uncapped.cap is None


def test_a_record_using_a_reserved_field_name_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        outbox_fields("__strm:{a.t.1}", None, 1.0, {DESTINATION_FIELD: b"x"})


@pytest.mark.parametrize(
    "fields",
    [
        {b"data": b"x"},  # not an outbox entry at all
        {DESTINATION_FIELD: b"k", CAP_FIELD: b"10 sideways k", b"__outbox_window": b"1.0"},
        {DESTINATION_FIELD: b"k", CAP_FIELD: b"", b"__outbox_window": b"soon"},
    ],
)
def test_a_malformed_outbox_entry_is_refused_naming_what_was_expected(
    fields: dict[bytes, bytes],
) -> None:
    with pytest.raises(ValueError, match="not an outbox entry"):
        parse_outbox_fields(fields)


def test_the_path_table_sends_only_colocated_outputs_direct() -> None:
    assert dict(PATHS) == {True: "direct", False: "outbox"}
    assert [path_of(c) for c in (True, False)] == ["direct", "outbox"]


def test_cluster_keys_of_the_outbox_path_share_the_slot_they_must() -> None:
    source, destination = Keys("a", "orders", "cluster"), Keys("a", "totals", "cluster")
    outbox = source.outbox("p", 3)
    assert outbox == "__outbox:{a.orders.3}.p"
    assert outbox.startswith("__outbox:{" + str(source.partition_tag(3)) + "}")
    key = relay_key(destination.stream(1), outbox, b"17-0")
    assert key == "__rlay:{a.totals.1}.a.orders.3.p.17-0"
    assert destination.idempotency("k", 1) == "__idem:{a.totals.1}.k"


def test_the_single_layout_keeps_its_idempotency_key_names() -> None:
    keys = Keys("a", "orders")
    assert keys.idempotency("k") == keys.idempotency("k", 5) == "__idem:a.orders.k"
