"""What replicas must share: refresh grace entries, single-flight locks, single-use claims.

``store: memory`` (the default) keeps them in the process, so the embedded default needs no
outside service. ``store: {url: redis://…}`` keeps them in Redis (redis-py's asyncio client),
so a refresh retried at another replica, or a code or ``state`` replayed there, is seen.

Keys are short (``gw:<kind>:<hash>``) and every key has a TTL. A key name is a SHA-256 of what
it names (:func:`store_key`), under no key at all, because every replica of one deployment must name
an entry the same way at every step of a key rotation: replicas with ``[OLD, NEW]`` and ``[NEW, OLD]``
run side by side, and a reload may change ``keys`` at any time, so a name derived from whichever key
seals would let a code be redeemed, a ``state`` claimed or a refresh made once *per key list*. What
is named is always a secret of at least 128 bits that the gateway never stores — an upstream's
refresh token (RFC 6749 §10.10), a code's payload with the upstream's code in it, the gateway's own
192-bit ``state`` nonce — so a name can be neither reversed nor found by guessing; the one thing a
reader of Redis can do with a name is tell whether a token *they already hold* was refreshed within
the grace window. Values that hold tokens are sealed by the caller (:mod:`gateway.oauth.refresh`)
with the name inside, and checked against it when opened, so an entry copied onto another name is
not trusted. Locks and claims are Redis's own atomic ``SET NX PX``; a lock is released only by its
owner (compare-and-delete in one Lua script); nothing here is a home-made protocol.

Values are read as bytes and decoded here: a value that is not UTF-8 (written by something else)
is absent, not a traceback.

Redis down or slow must never cost a link: every operation has a deadline well inside the
platform's 4.5 s budget (``store.timeout``, 0.25 s by default). When it fails, the operation is
served by the per-process store instead, a warning is logged (at most every 10 s) and
``gateway_store_errors_total`` / ``gateway_store_fallbacks_total`` count it. After a failure the
remote store is left alone for a second (each operation then falls back at once, counted as a
fallback only), so an outage does not add the deadline to every request.

The counts go to the :class:`StoreObserver` the app builds the store with (its Prometheus metrics
have that shape): this layer imports no observer of its own. The app opens the store when it is
built and closes it with the application (:func:`gateway.web.app.create_app`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from gateway.config.settings import StoreSettings

__all__ = ["StoreSettings", "MemoryStore", "RedisStore", "SharedStore", "StoreObserver", "Counter", "LabelledCounter", "store_key"]

log = logging.getLogger(__name__)
T = TypeVar("T")
V = TypeVar("V")

PREFIX = "gw:"
#: After a failed remote operation, the remote store is not tried again for this long.
_RETRY_AFTER = 1.0
_WARN_EVERY = 10.0


class Counter(Protocol):
    """A count that only goes up (a Prometheus counter has this shape)."""

    def inc(self, amount: float = 1) -> None: ...


class LabelledCounter(Protocol):
    """A count per label value (``counter.labels("get").inc()``)."""

    def labels(self, *values: str) -> Counter: ...


class StoreObserver(Protocol):
    """What the store reports while it serves: given by the app (the Prometheus metrics of
    :mod:`gateway.observe.metrics` have this shape), so this layer imports no observer."""

    @property
    def store_errors(self) -> LabelledCounter:
        """``gateway_store_errors_total{op}``: remote operations that failed or ran out of time."""
        ...

    @property
    def store_fallbacks(self) -> LabelledCounter:
        """``gateway_store_fallbacks_total{op}``: operations served by the per-process store instead."""
        ...


#: Domain separation of the names' hash: a name is never the hash of the bare secret.
_NAMES = b"gateway store names v2\x00"
#: Delete a lock only if it still holds the owner token this replica put there (one atomic step).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def store_key(kind: str, *parts: str) -> str:
    """The name of an entry: ``gw:<kind>:<SHA-256 of kind and parts>`` — the same at every replica
    whatever its keys (see the module docstring for why no key is used), never the value itself."""
    digest = hashlib.sha256(_NAMES + "\x00".join((kind, *parts)).encode("utf-8")).digest()
    return f"{PREFIX}{kind}:{base64.urlsafe_b64encode(digest[:18]).decode('ascii')}"


#: Expired entries a write drops from the oldest end, at most.
_EXPIRED_PER_WRITE = 4


class MemoryStore(Generic[V]):
    """The per-process store: a dict of values with expiry times (monotonic clock).

    ``clock`` is the one place it reads the time: a test that must see an entry expire (the
    refresh grace window) moves this clock instead of sleeping through the TTL. ``lookup`` and
    ``keep`` are the synchronous forms, for callers that never need another store behind it
    (the in-process refresh grace, :mod:`gateway.oauth.refresh`).

    A full store first drops what has expired, then the oldest entries down to nine tenths of
    its capacity: a scan of every entry at most once per tenth of the capacity, not per write.
    """

    def __init__(self, *, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        #: Oldest first: an OrderedDict drops from its front in O(1) (a dict's front, once
        #: entries are deleted there, is found by skipping them, one by one, on every look).
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._capacity = capacity
        self.clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def lookup(self, key: str) -> V | None:
        """The live value of ``key``, or None (an expired one is dropped on the way)."""
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self.clock():
            del self._items[key]
            return None
        return item[1]

    def keep(self, key: str, value: V, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (it moves to the newest end of the eviction order).

        Each write also drops a few expired entries from the oldest end (most of a store's
        entries share one lifetime, so they expire in the order they were written): the store
        stays near its live size without a scan."""
        items = self._items
        now = self.clock()
        for _ in range(_EXPIRED_PER_WRITE):
            if not items:
                break
            oldest = next(iter(items))
            if items[oldest][0] > now:
                break
            del items[oldest]
        if len(items) >= self._capacity:
            self._prune(now)
        items.pop(key, None)
        items[key] = (now + ttl, value)

    def _prune(self, now: float) -> None:
        """Drop every expired entry, then the oldest live ones down to nine tenths of the
        capacity: one pass over the entries, at most once per tenth of the capacity written."""
        items = self._items
        for key in [key for key, (until, _) in items.items() if until <= now]:
            del items[key]
        surplus = len(items) - (self._capacity - max(1, self._capacity // 10))
        for _ in range(max(0, surplus)):
            items.popitem(last=False)

    async def get(self, key: str) -> V | None:
        return self.lookup(key)

    async def put(self, key: str, value: V, ttl: float) -> None:
        self.keep(key, value, ttl)

    async def claim(self, key: str, ttl: float, value: V) -> bool:
        """True if ``key`` was free and is now held for ``ttl`` seconds (SET NX PX)."""
        if self.lookup(key) is not None:
            return False
        self.keep(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def release(self, key: str, owner: V) -> None:
        """Delete ``key`` only if it still holds ``owner`` (a lock this caller took)."""
        if self.lookup(key) == owner:
            del self._items[key]

    def clear(self) -> None:
        """Forget everything (a fuzzer that presents the same genuine flows again and again)."""
        self._items.clear()

    async def close(self) -> None:
        self.clear()


class RedisStore:
    """Redis through redis-py's asyncio client; each call is one atomic Redis command."""

    def __init__(self, url: str, *, ca_file: str | None = None) -> None:
        import redis.asyncio as redis  # imported only when configured

        # ssl_* options exist only for rediss:// connections (the config refuses ca_file otherwise).
        tls: dict[str, Any] = {"ssl_ca_certs": ca_file} if ca_file else {}
        self._client: Any = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0, **tls)
        self._release: Any = self._client.register_script(_RELEASE)

    async def get(self, key: str) -> str | None:
        """The value, or None: absent, or not UTF-8 (nothing the gateway wrote)."""
        value = await self._client.get(key)
        if not isinstance(value, bytes):
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._client.set(key, value, px=max(1, int(ttl * 1000)))

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        return bool(await self._client.set(key, value, nx=True, px=max(1, int(ttl * 1000))))

    async def delete(self, key: str) -> None:
        await self._client.delete(key)

    async def release(self, key: str, owner: str) -> None:
        """Compare-and-delete: a lock another replica has taken since ours expired stays its own."""
        await self._release(keys=[key], args=[owner])

    async def close(self) -> None:
        await self._client.aclose()


class SharedStore:
    """The store handlers use: the remote one if configured, the per-process one as its fallback.

    ``shared`` says whether other replicas see what is written here (a Redis URL is configured).
    """

    def __init__(self, settings: StoreSettings, metrics: StoreObserver, *, remote: RedisStore | None = None) -> None:
        self.settings = settings
        self.local: MemoryStore[str] = MemoryStore()
        self.remote = remote if remote is not None else (RedisStore(settings.url, ca_file=settings.ca_file) if settings.url else None)
        self.shared = self.remote is not None
        self._metrics = metrics
        self._skip_until = 0.0
        self._warned_at = -_WARN_EVERY

    @staticmethod
    def key(kind: str, *parts: str) -> str:
        """:func:`store_key`: the same name at every replica."""
        return store_key(kind, *parts)

    async def _run(self, op: str, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self.remote is None:
            return await local()
        if time.monotonic() >= self._skip_until:
            try:
                return await asyncio.wait_for(remote(), self.settings.timeout)
            except (TimeoutError, OSError, ConnectionError, _redis_errors()) as exc:
                self._skip_until = time.monotonic() + _RETRY_AFTER
                self._metrics.store_errors.labels(op).inc()
                self._warn(op, exc)
        self._metrics.store_fallbacks.labels(op).inc()
        return await local()

    def _warn(self, op: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "store %s failed (%s): serving from this process only until the store answers again",
                op,
                type(exc).__name__,
            )

    async def get(self, key: str) -> str | None:
        remote = self.remote
        return await self._run("get", lambda: remote.get(key) if remote else self.local.get(key), lambda: self.local.get(key))

    async def put(self, key: str, value: str, ttl: float) -> None:
        remote = self.remote
        await self._run(
            "put",
            lambda: remote.put(key, value, ttl) if remote else self.local.put(key, value, ttl),
            lambda: self.local.put(key, value, ttl),
        )

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        remote = self.remote
        return await self._run(
            "claim",
            lambda: remote.claim(key, ttl, value) if remote else self.local.claim(key, ttl, value),
            lambda: self.local.claim(key, ttl, value),
        )

    async def delete(self, key: str) -> None:
        remote = self.remote

        async def both() -> None:
            await self.local.delete(key)  # a claim taken during an outage lives here
            if remote is not None:
                await remote.delete(key)

        await self._run("delete", both, lambda: self.local.delete(key))

    async def release(self, key: str, owner: str) -> None:
        """Release a lock taken with ``claim(key, ttl, owner)``, only while it is still ``owner``'s."""
        remote = self.remote

        async def both() -> None:
            await self.local.release(key, owner)  # a lock taken during an outage lives here
            if remote is not None:
                await remote.release(key, owner)

        await self._run("release", both, lambda: self.local.release(key, owner))

    async def close(self) -> None:
        await self.local.close()
        if self.remote is not None:
            try:
                await asyncio.wait_for(self.remote.close(), 1.0)
            except Exception:  # noqa: BLE001 - closing a dead connection is not worth a traceback
                pass


def _redis_errors() -> type[Exception]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is a runtime dependency
        return OSError
    return RedisError
