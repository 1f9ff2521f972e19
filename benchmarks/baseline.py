"""The raw redis-py baseline: the same Redis work as runnel, without the framework.

Consumer (run as its own process, like a worker)::

    python -m benchmarks.baseline --url URL --kind nested --group consume \\
        --keys KEY1,KEY2,... --ready-key bench:ready:0 [--latency-out PATH]

A plain ``redis.asyncio`` loop (hiredis parser, uvloop when installed): one
``XREADGROUP COUNT 100 BLOCK 1000`` over all its partitions, pydantic validation of every
entry (``model_validate_json`` for JSON records, ``model_validate`` of the decoded fields
for primitive ones), then one pipelined ``XACK`` per partition per batch.

Sender (used in-process by the send and latency scenarios): :class:`RawSender`, one
``XADD ... MAXLEN = <cap>`` per record, pipelined when a call has several records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT
from xxhash import xxh64_intdigest

from benchmarks.models import KINDS, BlobData, OrderData, RecordKind, TickData
from benchmarks.samples import write_latencies

Fields = dict[FieldT, EncodableT]
ReplyFields = Mapping[bytes, bytes]


def raw_client(url: str) -> Redis:
    """A plain redis-py client: RESP2, bytes replies (hiredis parses when installed)."""
    return Redis.from_url(url, protocol=2, decode_responses=False)


# ---------------------------------------------------------------------- encoding


def encode_tick(record: TickData) -> Fields:
    """The native stream fields of a Tick, written by hand."""
    return {
        b"id": b"%d" % record.id,
        b"account": record.account.encode(),
        b"amount": repr(record.amount).encode(),
        b"ok": b"1" if record.ok else b"0",
        b"sent_ns": b"%d" % record.sent_ns,
    }


def encode_order(record: OrderData) -> Fields:
    """An Order as one JSON ``data`` field."""
    return {b"data": record.model_dump_json().encode()}


def decode_tick(fields: ReplyFields) -> TickData:
    """Build a TickData from its native stream fields."""
    return TickData.model_validate(
        {
            "id": int(fields[b"id"]),
            "account": fields[b"account"].decode(),
            "amount": float(fields[b"amount"]),
            "ok": fields[b"ok"] == b"1",
            "sent_ns": int(fields[b"sent_ns"]),
        }
    )


def decode_order(fields: ReplyFields) -> OrderData:
    """Validate an Order from its JSON ``data`` field."""
    return OrderData.model_validate_json(fields[b"data"])


def decode_blob(fields: ReplyFields) -> BlobData:
    """Validate a large record from its JSON ``data`` field."""
    return BlobData.model_validate_json(fields[b"data"])


def decoder(kind: RecordKind) -> Callable[[ReplyFields], TickData | OrderData | BlobData]:
    """The hand-written decoder of ``kind``."""
    if kind == "large":
        return decode_blob
    return decode_tick if kind == "primitive" else decode_order


# ---------------------------------------------------------------------- sender


class RawSender:
    """Sends records with plain XADDs: one per record, pipelined when there are several."""

    def __init__(self, client: Redis, keys: Sequence[str], maxlen: int | None) -> None:
        self._client = client
        self._keys = list(keys)
        self._maxlen = maxlen

    def route(self, record: TickData | OrderData) -> str:
        """The partition key of ``record`` (XXH64 of its id, like runnel)."""
        return self._keys[xxh64_intdigest(b"%d" % record.id) % len(self._keys)]

    @staticmethod
    def fields(record: TickData | OrderData) -> Fields:
        """The stored fields of ``record``."""
        return encode_tick(record) if isinstance(record, TickData) else encode_order(record)

    async def send(self, records: Sequence[TickData | OrderData]) -> list[bytes]:
        """XADD every record (a pipeline for more than one); return the new ids."""
        maxlen = self._maxlen
        if len(records) == 1:
            record = records[0]
            entry_id = await self._client.xadd(
                self.route(record), self.fields(record), maxlen=maxlen, approximate=False
            )
            return [entry_id if isinstance(entry_id, bytes) else entry_id.encode()]
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self.route(record), self.fields(record), maxlen=maxlen, approximate=False)
        ids: list[bytes] = await pipe.execute()
        return ids


# ---------------------------------------------------------------------- consumer


async def consume(
    url: str,
    kind: RecordKind,
    group: str,
    keys: Sequence[str],
    ready_key: str,
    latency_out: str | None,
) -> None:
    """Consume ``keys`` for ``group`` until SIGTERM/SIGINT."""
    client = raw_client(url)
    decode = decoder(kind)
    streams: dict[Any, Any] = dict.fromkeys(keys, b">")
    ids: array[int] = array("q")
    ages: array[int] = array("q")
    clock = time.monotonic_ns
    track = latency_out is not None
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    stopping = False

    def on_signal() -> None:
        # Cancel the blocked read now; the flag also ends the loop within one BLOCK
        # period should the cancellation be absorbed inside redis-py.
        nonlocal stopping
        stopping = True
        me.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await client.set(ready_key, b"1")
    try:
        while not stopping:
            reply: Any = await client.xreadgroup(group, "raw", streams, count=100, block=1000)
            if not reply:
                continue
            pipe = client.pipeline(transaction=False)
            for key, entries in reply:
                acked = []
                for entry_id, fields in entries:
                    record = decode(fields)
                    if track:
                        ages.append(clock() - record.sent_ns)
                        ids.append(record.id)
                    acked.append(entry_id)
                pipe.xack(key, group, *acked)
            await pipe.execute()
    except asyncio.CancelledError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
        if latency_out is not None:
            write_latencies(latency_out, ids, ages)


def run(coro: Any) -> None:
    """Run ``coro`` on uvloop when installed (as the runnel CLI does)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the `fast` extra is installed for benchmarks
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the raw consumer process."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline")
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--keys", required=True, help="comma-separated partition stream keys")
    parser.add_argument("--ready-key", required=True)
    parser.add_argument("--latency-out", default=None)
    args = parser.parse_args(argv)
    kind: RecordKind = args.kind
    run(consume(args.url, kind, args.group, args.keys.split(","), args.ready_key, args.latency_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
