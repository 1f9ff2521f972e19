"""The App: where streams, processors and background tasks are declared.

Example:
    >>> from runnel import App, Record
    >>> app = App(name="shop", redis_url="memory://doc-app")
    >>> class Order(Record):
    ...     order_id: int
    >>> orders = app.stream("orders", record=Order, partition_by="order_id")
    >>> @app.processor(orders)
    ... async def printer(events):
    ...     async for order in events.records():
    ...         print(order.order_id)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, overload

from dependency_injector import providers
from pydantic import TypeAdapter, ValidationError

from runnel.adapters.hashers import Hasher, is_default_hasher
from runnel.codec import state_spec
from runnel.container import Container, key_layout, prometheus_installed
from runnel.domain.hashing import HASH_VERSION
from runnel.domain.health import StuckThresholds
from runnel.domain.keys import KeyLayout
from runnel.domain.model import TrimMode
from runnel.domain.policy import ExceptionPolicy
from runnel.domain.transactions import GUARANTEES, Guarantee
from runnel.errors import Misconfigured, UnknownProcessor
from runnel.interfaces import Compressor, Middleware, Serializer
from runnel.ports import Backend
from runnel.record import Record
from runnel.runtime import admin
from runnel.runtime.plan import PartitionChecks, WorkerPlan
from runnel.runtime.specs import ProcessorSpec, StreamSpec, TaskSpec
from runnel.runtime.store import StreamStore
from runnel.settings import Settings
from runnel.stream import PartitionBy, Stream
from runnel.telemetry import Metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from runnel.adapters.http.endpoint import HttpEndpoint
    from runnel.runtime.worker import Worker

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)
F = TypeVar("F", bound=Callable[..., Any])

_IGNORED_OVERRIDES = {
    "pool_size": (
        "the pool_size processor setting is accepted for compatibility and ignored: a worker "
        "shares one connection pool between its processors (size it with default_pool_size)"
    ),
}
"""Per-processor settings of the original design that runnel accepts and ignores."""

_PROCESSOR_OVERRIDES = {
    "lock_expiry": "default_lock_expiry",
    "read_timeout": "default_read_timeout",
    "prefetch_count": "default_prefetch_count",
    "prefetch_max": "default_prefetch_max",
    "assignment_attempts": "default_assignment_attempts",
    "assignment_sleep": "default_assignment_sleep",
    "grace_period": "default_grace_period",
    "join_delay": "default_join_delay",
    "heartbeat_interval": "default_heartbeat_interval",
}


class App:
    """A runnel application.

    Args:
        name: the app's name; it prefixes every backend key.
        redis_url: backend URL (``redis://``, ``rediss://``, ``unix://`` or
            ``memory://[name]``); defaults to ``RUNNEL_REDIS_URL`` or the local Redis.
        autodiscover: a glob of modules the worker imports at start-up.
        container: a pre-built :class:`runnel.container.Container` (overrides wiring).
        **settings: any field of :class:`runnel.settings.Settings`; kwargs win over env.

    Example:
        >>> app = App(name="demo", redis_url="memory://", default_partition_count=4)
        >>> app.settings.default_partition_count
        4
    """

    def __init__(
        self,
        name: str,
        redis_url: str | None = None,
        autodiscover: str | None = None,
        container: Container | None = None,
        **settings: Any,
    ) -> None:
        if not name or any(c in name for c in " .:{}"):
            raise Misconfigured(
                f"app name {name!r} must be non-empty without spaces, '.', ':' or braces"
            )
        if redis_url is not None:
            settings["redis_url"] = redis_url
        if autodiscover is not None:
            settings["autodiscover"] = autodiscover
        inherited = container is not None and container.settings.is_defined
        if container is not None and inherited and not settings:
            self.settings = container.settings()
        else:
            # kwargs refine a given container's settings; they do not replace them with defaults.
            base = container.settings().model_dump() if container is not None and inherited else {}
            try:
                self.settings = Settings(**{**base, **settings})
            except Exception as exc:
                raise Misconfigured(f"invalid settings for app {name!r}: {exc}") from exc
        self.name = name
        self.container = container if container is not None else Container(settings=self.settings)
        if container is not None and (settings or not inherited):
            self.container.settings.override(self.settings)
        self.streams: dict[str, Stream[Any]] = {}
        self.processors: dict[str, ProcessorSpec] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self._backend: Backend | None = None
        self._stores: dict[str, StreamStore] = {}
        self._discovered = False

    def __repr__(self) -> str:
        return f"<App {self.name} backend={self.settings.redacted_url()}>"

    @property
    def key_layout(self) -> KeyLayout:
        """How the backend's keys are named: ``cluster`` for a ``redis+cluster://`` URL
        (hash-tagged, see ``docs/architecture.md``), else ``single``.

        Example:
            >>> App(name="doc-layout", redis_url="memory://doc-layout").key_layout
            'single'
        """
        return key_layout(self.settings.redis_url)

    @property
    def backend(self) -> Backend:
        """The ports this app talks through (built lazily by the container)."""
        if self._backend is None:
            self._backend = self.container.backend()
            self._stores = {}
        return self._backend

    def _store(self, stream: str) -> StreamStore:
        """The store of ``stream`` on the current backend (built on first use)."""
        store = self._stores.get(stream)
        if store is None:
            backend = self.backend
            store = self._stores[stream] = StreamStore(
                self.streams[stream].spec,
                backend.log,
                backend.kv,
                backend.clock,
                groups=self.groups_of(self.streams[stream]),
                wait_timeout=self.settings.default_send_wait_timeout,
                idempotency_window=self.settings.idempotency_window,
                metrics=self.metrics,
                tracing=self.container.tracing(),
            )
            store.on_resize = lambda spec, name=stream: self._resized(name, spec)
        return store

    def _resized(self, stream: str, spec: StreamSpec) -> None:
        """``stream`` was found grown: route with ``spec``, and so do the processor specs."""
        found = self.streams[stream]
        found._adopt(spec)
        for name, processor in self.processors.items():
            if processor.stream.name == stream and processor.stream is not found.spec:
                self.processors[name] = dataclasses.replace(processor, stream=found.spec)

    @property
    def metrics(self) -> Metrics:
        """The metrics port this App reports through (a no-op unless metrics are on).

        With metrics on, it exports through :attr:`metrics_registry`.
        """
        if prometheus_installed():
            self.metrics_registry  # noqa: B018  # made first, so the metrics export through it
        return self.container.metrics()

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus registry the worker's ``/metrics`` serves: add your own metrics.

        It is made on first use (with the process and platform collectors) and kept for
        the App's life, whatever settings change later, so metrics registered on it at
        import time are served by ``runnel worker --http``. To export through a registry
        of your own instead, override ``app.container.metrics_registry`` first.

        Raises:
            runnel.errors.Misconfigured: prometheus-client is not installed.

        Example:
            >>> from prometheus_client import Counter
            >>> app = App(name="doc-registry", redis_url="memory://doc-registry")
            >>> charged = Counter("charged", "Orders charged.", registry=app.metrics_registry)
            >>> app.metrics_registry is app.metrics_registry
            True
        """
        registry = self.container.metrics_registry()
        if registry is None:
            try:
                from runnel.adapters.prometheus import new_registry
            except ImportError as exc:
                raise Misconfigured(
                    "metrics need prometheus-client: pip install 'runnel[metrics]'"
                ) from exc
            registry = new_registry()
            self.container.metrics_registry.override(providers.Object(registry))
        return registry  # type: ignore[return-value]  # checked by make_metrics

    def _built_store(self, stream: str) -> StreamStore | None:
        """The store of ``stream`` if one was built on the current backend."""
        return self._stores.get(stream) if self._backend is not None else None

    def _forget_backend(self) -> Backend | None:
        """Drop the backend and every store on it (a new one knows nothing yet); the streams
        take the current settings' decoding limits."""
        backend, self._backend, self._stores = self._backend, None, {}
        limits = self.settings.decode_limits()
        for stream in self.streams.values():
            stream.codec.limits = limits
        return backend

    # ------------------------------------------------------------------ streams

    def stream(
        self,
        name: str,
        record: type[R],
        partition_by: PartitionBy,
        partition_count: int | None = None,
        partition_size: int | None = None,
        serializer: Serializer | None = None,
        compressor: Compressor | None = None,
        hasher: Hasher | None = None,
        trim_mode: TrimMode | None = None,
    ) -> Stream[R]:
        """Declare a stream of ``record`` events partitioned by ``partition_by``.

        Example:
            >>> app = App(name="doc-stream", redis_url="memory://doc-stream")
            >>> class Order(Record):
            ...     order_id: int
            >>> orders = app.stream("orders", record=Order, partition_by="order_id",
            ...                     partition_count=4)
            >>> orders.partition_count, orders.keys.stream(3)
            (4, '__strm:doc-stream.orders.3')
        """
        if not name or any(c in name for c in " :{}"):
            raise Misconfigured(
                f"stream name {name!r} must be non-empty without spaces, ':' or braces"
            )
        if name in self.streams:
            raise Misconfigured(f"stream {name!r} is already defined on app {self.name!r}")
        s = self.settings
        # A hasher given here or by an overridden container provider is recorded by name,
        # so apps that route keys differently can never share the stream unnoticed.
        chosen_hasher = hasher if hasher is not None else self.container.hasher()
        stream: Stream[R] = Stream(
            app=self,
            name=name,
            record=record,
            partition_by=partition_by,
            partition_count=s.default_partition_count
            if partition_count is None
            else partition_count,
            partition_size=s.default_partition_size if partition_size is None else partition_size,
            serializer=serializer if serializer is not None else self.container.serializer(),
            compressor=compressor if compressor is not None else self.container.compressor(),
            hasher=chosen_hasher,
            hasher_name=HASH_VERSION
            if is_default_hasher(chosen_hasher)
            else _qualname(chosen_hasher),
            trim_mode=s.default_trim_mode if trim_mode is None else trim_mode,
        )
        self.streams[name] = stream
        return stream

    def groups_of(self, stream: Stream[Any]) -> list[str]:
        """Names of the processors (consumer groups) declared on ``stream``, and of the
        groups that keep its entries (a dead-letter sink's)."""
        declared = [p.name for p in self.processors.values() if p.stream.name == stream.name]
        return declared + list(stream.kept_by)

    # ------------------------------------------------------------------ processors

    def processor(
        self,
        stream: Stream[Any],
        name: str | None = None,
        exception_policy: ExceptionPolicy | str | None = None,
        middleware: Sequence[Middleware] = (),
        *,
        guarantee: Guarantee = "at_least_once",
        state: Any = None,
        **overrides: Any,
    ) -> Callable[[F], F]:
        """Register an async function that processes ``stream``'s partitions.

        ``overrides`` are per-processor settings: lock_expiry, read_timeout (ms),
        prefetch_count, prefetch_max, assignment_attempts, assignment_sleep, grace_period,
        join_delay, heartbeat_interval. ``pool_size`` is accepted for compatibility and
        ignored (with a DeprecationWarning).

        ``guarantee="effectively_once"`` commits, for every item processed (an event, or a
        batch from ``take``), the records it sent to runnel streams, the changes it made
        to its keyed state and the acknowledgement of the item in one atomic step fenced
        by the partition's lease: after a crash, a redelivery or a handoff each input's
        effects appear exactly once. ``state`` (a value type pydantic validates, such as
        ``int`` or a ``Record``) gives it keyed state per partition, ``events.state``.
        See ``docs/effectively-once.md``.

        Example:
            >>> app = App(name="doc-processor", redis_url="memory://doc-processor")
            >>> class Order(Record):
            ...     order_id: int
            >>> orders = app.stream("orders", record=Order, partition_by="order_id")
            >>> @app.processor(orders, exception_policy="ignore", prefetch_count=32)
            ... async def audit(events):
            ...     async for order in events.records():
            ...         print(order.order_id)
            >>> spec = app.processors["audit"]
            >>> spec.exception_policy.value, spec.prefetch_count, spec.stream.name
            ('ignore', 32, 'orders')
        """
        target: object = stream
        if not isinstance(target, Stream) or target.app is not self:
            raise Misconfigured(
                f"@app.processor needs a stream of app {self.name!r}, got {stream!r}"
            )
        for ignored in set(overrides) & set(_IGNORED_OVERRIDES):
            warnings.warn(_IGNORED_OVERRIDES[ignored], DeprecationWarning, stacklevel=2)
            overrides = {k: v for k, v in overrides.items() if k != ignored}
        unknown = set(overrides) - set(_PROCESSOR_OVERRIDES)
        if unknown:
            raise Misconfigured(
                f"unknown processor settings {sorted(unknown)}; expected any of "
                f"{sorted(_PROCESSOR_OVERRIDES)}"
            )
        for mw in middleware:
            if not isinstance(mw, Middleware):
                raise Misconfigured(f"middleware must be Middleware instances, got {mw!r}")

        def register(func: F) -> F:
            if not inspect.iscoroutinefunction(func):
                raise Misconfigured(f"processor {func!r} must be an async function")
            proc_name = name or func.__name__
            if not proc_name or any(c in proc_name for c in " .:{}"):
                raise Misconfigured(
                    f"processor name {proc_name!r} must not contain spaces, '.', ':' or braces"
                )
            if proc_name in self.processors:
                raise Misconfigured(
                    f"processor {proc_name!r} is already defined on app {self.name!r}"
                )
            values = {
                key: getattr(self.settings, default)
                for key, default in _PROCESSOR_OVERRIDES.items()
            }
            for key, value in overrides.items():
                values[key] = _validated_override(proc_name, key, value)
            policy = (
                exception_policy
                if exception_policy is not None
                else self.settings.default_exception_policy
            )
            try:
                policy = ExceptionPolicy(policy)
            except ValueError as exc:
                raise Misconfigured(f"unknown exception_policy {policy!r}") from exc
            if guarantee not in GUARANTEES:
                raise Misconfigured(
                    f"processor {proc_name!r}: guarantee must be one of "
                    f"{', '.join(GUARANTEES)}, got {guarantee!r}"
                )
            keyed = None
            if state is not None:
                if guarantee != "effectively_once":
                    raise Misconfigured(
                        f"processor {proc_name!r}: keyed state is committed with the "
                        "acknowledgements, which needs guarantee='effectively_once'"
                    )
                keyed = state_spec(state, stream.serializer, stream.compressor)
            spec = ProcessorSpec(
                name=proc_name,
                stream=stream.spec,
                func=func,
                exception_policy=policy,
                middleware=tuple(middleware),
                lock_expiry=float(values["lock_expiry"]),
                read_timeout=float(values["read_timeout"]) / 1000.0,
                prefetch_count=int(values["prefetch_count"]),
                prefetch_max=int(values["prefetch_max"]),
                assignment_attempts=int(values["assignment_attempts"]),
                assignment_sleep=float(values["assignment_sleep"]),
                grace_period=float(values["grace_period"]),
                join_delay=float(values["join_delay"]),
                heartbeat_interval=float(values["heartbeat_interval"]),
                guarantee=guarantee,
                state=keyed,
            )
            self.processors[proc_name] = spec
            store = self._built_store(stream.name)
            if store is not None:  # a new group, created on the next send
                store.declare_group(proc_name)
            for mw in middleware:
                mw.bind(self, proc_name)
            return func

        return register

    # ------------------------------------------------------------------ tasks

    @overload
    def task(self, func: F, /) -> F: ...

    @overload
    def task(
        self, func: None = None, /, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[F], F]: ...

    def task(self, func: Any = None, /, *, on_leader: bool = False, name: str | None = None) -> Any:
        """Run an async function once when a worker starts (on the leader only if asked).

        Example:
            >>> app = App(name="doc-task", redis_url="memory://doc-task")
            >>> @app.task(on_leader=True)
            ... async def migrate():
            ...     print("once per leadership")
            >>> app.tasks["migrate"].kind, app.tasks["migrate"].on_leader
            ('task', True)
        """

        def register(f: F) -> F:
            self._add_task(TaskSpec(name or f.__name__, f, "task", on_leader=on_leader))
            return f

        return register(func) if func is not None else register

    def timer(
        self, *, interval: float, on_leader: bool = False, name: str | None = None
    ) -> Callable[[F], F]:
        """Run an async function every ``interval`` seconds (never overlapping, no drift).

        Example:
            >>> app = App(name="doc-timer", redis_url="memory://doc-timer")
            >>> @app.timer(interval=10)
            ... async def every_10_seconds():
            ...     print("tick")
            >>> app.tasks["every_10_seconds"].interval
            10.0
        """
        if not interval > 0:
            raise Misconfigured(f"timer interval must be > 0 seconds, got {interval!r}")

        def register(f: F) -> F:
            self._add_task(
                TaskSpec(
                    name or f.__name__, f, "timer", on_leader=on_leader, interval=float(interval)
                )
            )
            return f

        return register

    def crontab(
        self,
        spec: str,
        *,
        on_leader: bool = False,
        timezone: str | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Run an async function on a cron schedule (``timezone`` defaults to the setting).

        Example:
            >>> app = App(name="doc-crontab", redis_url="memory://doc-crontab")
            >>> @app.crontab("45 17 * * *", timezone="Europe/Paris")
            ... async def every_5_45_pm():
            ...     print("closing time")
            >>> app.tasks["every_5_45_pm"].cron, app.tasks["every_5_45_pm"].timezone
            ('45 17 * * *', 'Europe/Paris')
        """
        from runnel.domain.schedule import CronSchedule

        tz = timezone or self.settings.timezone
        try:
            CronSchedule(spec, tz)
        except ValueError as exc:
            raise Misconfigured(str(exc)) from exc

        def register(f: F) -> F:
            self._add_task(
                TaskSpec(
                    name or f.__name__, f, "crontab", on_leader=on_leader, cron=spec, timezone=tz
                )
            )
            return f

        return register

    def _add_task(self, spec: TaskSpec) -> None:
        if not inspect.iscoroutinefunction(spec.func):
            raise Misconfigured(f"background task {spec.func!r} must be an async function")
        if spec.name in self.tasks:
            raise Misconfigured(f"a background task named {spec.name!r} already exists")
        self.tasks[spec.name] = spec

    # ------------------------------------------------------------------ running

    def discover(self) -> list[str]:
        """Import the modules matching the ``autodiscover`` glob (once); return their names."""
        pattern = self.settings.autodiscover
        if not pattern or self._discovered:
            return []
        self._discovered = True
        imported = []
        for path in sorted(Path().glob(pattern)):
            if path.suffix != ".py" or not path.is_file():
                continue
            module = ".".join(path.with_suffix("").parts)
            if module in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(module, path)
            if spec is None or spec.loader is None:
                continue
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module] = mod
            spec.loader.exec_module(mod)
            imported.append(module)
        log.info("autodiscover imported %d module(s) matching %s", len(imported), pattern)
        return imported

    async def run_worker(self, processors: Sequence[str] | None = None) -> int:
        """Run a worker until SIGTERM/SIGINT (or a HALT); return the exit code.

        This is what ``runnel worker`` runs. It owns the process: it installs signal
        handlers and, once started, tunes the garbage collector for a long-running
        stream processor (see :class:`runnel.runtime.worker.Worker`). Under
        ``runnel worker`` it also ends the process at the latest the longest
        ``grace_period`` + 5 seconds after a stop begins, whatever Redis does.

        Example:
            A program of your own that runs a worker::

                exit_code = asyncio.run(app.run_worker())
                sys.exit(exit_code)
        """
        from runnel.runtime.worker import Worker, exit_guard_wanted

        self.discover()
        guard = exit_guard_wanted.get()  # set by `runnel worker`, which owns its process
        worker = Worker(self.plan(processors), tune_gc=True, exit_guard=guard)
        endpoint = self._endpoint(worker)
        if endpoint is None:
            return await worker.run()
        await endpoint.start()
        try:
            return await worker.run()
        finally:
            await endpoint.aclose()

    def _endpoint(self, worker: Worker) -> HttpEndpoint | None:
        """The HTTP endpoint of ``worker``, when ``http_address`` is set."""
        address = self.settings.http_host_port()
        if address is None:
            return None
        from runnel.adapters.http.endpoint import HttpEndpoint

        metrics = self.metrics
        exposition = getattr(metrics, "exposition", None)
        if exposition is None:
            log.warning(
                "metrics are off, so /metrics answers 404 (install runnel[metrics], or "
                "leave the metrics setting unset or true)"
            )

        def render(accept: str) -> tuple[bytes, str]:
            worker.publish_metrics()  # counters the worker keeps itself, brought up to date
            assert exposition is not None
            body, content_type = exposition(accept)
            return body, content_type

        return HttpEndpoint(*address, worker.health, render if exposition else None)

    def reconfigure(self, **updates: Any) -> None:
        """Replace settings (e.g. from CLI options) before the backend is first used.

        Example:
            >>> app = App(name="demo", redis_url="memory://a")
            >>> app.reconfigure(redis_url="memory://b")
            >>> app.settings.redis_url
            'memory://b'
        """
        if self._backend is not None:
            raise Misconfigured("reconfigure() must be called before the backend is used")
        try:
            self.settings = Settings(**{**self.settings.model_dump(), **updates})
        except Exception as exc:
            raise Misconfigured(f"invalid settings for app {self.name!r}: {exc}") from exc
        self.container.settings.override(self.settings)
        self.container.reset_singletons()
        self._forget_backend()
        self._relayout()

    def _relayout(self) -> None:
        """Rename every stream's keys for the current URL's key layout, if it changed."""
        layout = self.key_layout
        for stream in self.streams.values():
            stream._use_layout(layout)
        for name, spec in self.processors.items():
            current = self.streams[spec.stream.name].spec
            if spec.stream is not current:
                self.processors[name] = dataclasses.replace(spec, stream=current)

    def processor_specs(self, names: Iterable[str] | None = None) -> list[ProcessorSpec]:
        """The specs of the processors called ``names`` (every processor when None).

        Raises:
            runnel.errors.UnknownProcessor: a name no processor of the App has (the message
                lists the ones it has).

        Example:
            >>> app = App(name="doc-specs", redis_url="memory://doc-specs")
            >>> app.processor_specs(["nope"])
            Traceback (most recent call last):
            ...
            runnel.errors.UnknownProcessor: unknown processor(s) nope; available: (none)
        """
        if names is None:
            return list(self.processors.values())
        wanted = list(names)
        unknown = [n for n in wanted if n not in self.processors]
        if unknown:
            raise UnknownProcessor(
                f"unknown processor(s) {', '.join(unknown)}; available: "
                f"{', '.join(sorted(self.processors)) or '(none)'}"
            )
        return [self.processors[n] for n in wanted]

    def _processor_spec(self, processor: str) -> ProcessorSpec:
        (spec,) = self.processor_specs([processor])
        return spec

    def plan(self, processors: Iterable[str] | None = None) -> WorkerPlan:
        """What a worker of this App runs: ``processors`` (all by default) and every task.

        The plan carries the App's backend and the stores of its streams, built now if
        they were not yet.

        Raises:
            runnel.errors.UnknownProcessor: a processor name the App does not have.

        Example:
            >>> app = App(name="doc-app-plan", redis_url="memory://doc-app-plan")
            >>> [spec.name for spec in app.plan().processors]
            []
        """
        specs = self.processor_specs(processors)
        backend = self.backend
        return WorkerPlan(
            app=self.name,
            processors=tuple(specs),
            tasks=tuple(self.tasks.values()),
            stores={name: self._store(name) for name in self.streams},
            backend=backend,
            leadership_poll_interval=self.settings.leadership_poll_interval / 1000.0,
            where=self.settings.redacted_url(),
            key_layout=self.key_layout,
            prefetch_bytes=self.settings.prefetch_bytes,
            metrics=self.metrics,
            tracing=self.container.tracing(),
            checks=PartitionChecks(
                interval=self.settings.partition_check_interval,
                stuck=StuckThresholds(
                    iteration=self.settings.stuck_iteration_seconds or None,
                    pending=self.settings.stuck_pending_seconds or None,
                ),
            ),
        )

    async def quarantined(self, processor: str) -> dict[int, dict[str, Any]]:
        """The quarantined partitions of ``processor``: number -> what failed and when.

        Each record holds ``partition``, ``entry_id`` (the entry that failed),
        ``error_type``, ``error``, ``time`` and ``worker`` (see
        :mod:`runnel.domain.failures`).

        Raises:
            runnel.errors.UnknownProcessor: the App has no such processor.
        """
        return await admin.quarantines(self.backend.kv, self._processor_spec(processor))

    async def clear_quarantine(self, processor: str, partition: int) -> bool:
        """Lift a quarantine; the owning worker resumes the partition from its failed entry.

        Returns:
            False if the partition was not quarantined.
        """
        spec = self._processor_spec(processor)
        return await admin.clear_quarantine(self.backend.kv, spec, partition)

    async def state(
        self, processor: str, partition: int | None = None
    ) -> dict[int, dict[str, Any]]:
        """The committed keyed state of an effectively-once ``processor``: partition ->
        key -> value (every partition with state, or only ``partition``).

        Raises:
            runnel.errors.UnknownProcessor: the App has no such processor.
            runnel.errors.Misconfigured: it was declared without ``state=``, or
                ``partition`` is not one of its stream's.

        Example:
            >>> import asyncio
            >>> app = App(name="doc-state", redis_url="memory://doc-state")
            >>> class Order(Record):
            ...     customer: str
            >>> orders = app.stream("orders", record=Order, partition_by="customer")
            >>> @app.processor(orders, guarantee="effectively_once", state=int)
            ... async def totals(events):
            ...     pass
            >>> asyncio.run(app.state("totals"))
            {}
        """
        spec = self._processor_spec(processor)
        count = spec.stream.partition_count
        if partition is not None and not 0 <= partition < count:
            raise Misconfigured(
                f"partition {partition} is not one of {spec.stream.name}'s 0..{count - 1}"
            )
        numbers = range(count) if partition is None else [partition]
        return await admin.keyed_state(self.backend.kv, spec, numbers)

    async def reset_processor(
        self, processor: str, start: bytes = b"0", force: bool = False
    ) -> int:
        """Restart ``processor``'s group on every partition after ``start``; how many.

        Pending entries are forgotten. Refused while a worker holds one of its partitions,
        unless ``force``.

        Raises:
            runnel.errors.Misconfigured: a worker holds one of its partitions.
        """
        spec = self._processor_spec(processor)
        return await admin.reset_processor(self.backend, spec, start, force)

    async def close(self) -> None:
        """Close backend connections (idempotent)."""
        backend = self._forget_backend()
        if backend is not None:
            await backend.aclose()
        self.container.reset_singletons()


def _validated_override(processor: str, key: str, value: Any) -> Any:
    """Check a per-processor setting against the constraints of its app-wide default."""
    field = Settings.model_fields[_PROCESSOR_OVERRIDES[key]]
    # The field's own FieldInfo carries its constraints (ge, gt, ...).
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, field])  # type: ignore[arg-type]
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        reason = "; ".join(e["msg"] for e in exc.errors())
        raise Misconfigured(
            f"processor {processor!r}: invalid {key}={value!r} ({reason})"
        ) from None


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    return f"custom:{module}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
