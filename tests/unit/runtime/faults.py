"""Fault injection for engine tests: a backend whose calls can hang (pause) or fail (crash)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from runnel.errors import BackendUnavailable
from runnel.ports import Backend


class Gate:
    """Controls every backend call of one virtual worker."""

    def __init__(self) -> None:
        self.crashed = False
        self.open = asyncio.Event()
        self.open.set()

    async def check(self) -> None:
        if self.crashed:
            raise BackendUnavailable("worker crashed")
        await self.open.wait()
        if self.crashed:
            raise BackendUnavailable("worker crashed")

    def pause(self) -> None:
        self.open.clear()

    def resume(self) -> None:
        self.open.set()

    def crash(self) -> None:
        self.crashed = True
        self.open.set()


class _Gated:
    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        gate = self._gate

        async def call(*args: Any, **kwargs: Any) -> Any:
            await gate.check()
            result = await attr(*args, **kwargs)
            await gate.check()  # a crash or pause during the call withholds the reply
            return result

        return call


def gated(backend: Backend, gate: Gate) -> Backend:
    """``backend`` with every port call passing through ``gate``."""
    log = _Gated(backend.log, gate)
    return Backend(
        log=log,
        admin=log,
        locks=_Gated(backend.locks, gate),
        kv=_Gated(backend.kv, gate),
        membership=_Gated(backend.membership, gate),
        clock=backend.clock,
    )
