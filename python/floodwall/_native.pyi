"""Type stubs of the C extension floodwall._native."""

import os
from collections.abc import Sequence
from typing import Any, Callable

GCRA: int
TOKEN_BUCKET: int
LEAKY_BUCKET: int
LEAKY_BUCKET_SHAPING: int
FIXED_WINDOW: int
SLIDING_WINDOW: int
SLIDING_LOG: int
# the engine's facts (include/floodwall.h): algorithm names in engine order
# (ALGORITHMS[GCRA] == "gcra"), bounds and defaults, versions
ALGORITHMS: tuple[str, ...]
MAX_KEYS_MAX: int
DEFAULT_MAX_KEYS: int
LOG_CAPACITY_MAX: int
SLIDING_LOG_MAX: int  # the same as LOG_CAPACITY_MAX
CHECK_PARTS_MAX: int
TABLE_LAYOUT_VERSION: int
ENGINE_VERSION: int

class Decision:
    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        retry_after_ns: int,
        reset_after_ns: int,
        delay_ns: int = 0,
        rate: Any = None,
        *,
        fallback: bool = False,
    ) -> None: ...
    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def delay(self) -> float: ...
    @property
    def retry_after_ns(self) -> int: ...
    @property
    def reset_after_ns(self) -> int: ...
    @property
    def delay_ns(self) -> int: ...
    @property
    def rate(self) -> Any: ...
    @property
    def fallback(self) -> bool: ...
    def as_dict(self) -> dict[str, Any]: ...
    def __bool__(self) -> bool: ...

class Table:
    def __init__(self, *, max_keys: int = 65536, log_capacity: int = 0) -> None: ...
    def stats(self, now_ns: int, /) -> dict[str, int]: ...
    def damaged(self, n: int = 100, /) -> list[dict[str, int]]: ...
    def clear(self) -> None: ...
    @property
    def clock_realtime(self) -> bool: ...
    @property
    def blocking(self) -> bool: ...

class Policy:
    def __init__(
        self,
        table: Table,
        algorithm: int,
        quotas: Sequence[tuple[int, int, int]],
        namespace: bytes,
        labels: tuple[Any, ...],
        clock: Callable[[], int] | None = None,
        fail: int = 0,
        on_error: Callable[[BaseException], object] | None = None,
    ) -> None: ...
    def check(self, key: str | bytes, cost: int = 1) -> Decision: ...
    def allow(self, key: str | bytes, cost: int = 1) -> bool: ...
    def peek(self, key: str | bytes) -> Decision: ...
    def reset(self, key: str | bytes) -> None: ...
    def counts(self) -> tuple[int, int, int]: ...
    def now_ns(self) -> int: ...

def check_all(
    parts: Sequence[tuple[Policy, str | bytes]], cost: int, /
) -> tuple[Decision, int]: ...

# shm:// and file:// tables (shared_tables.c)
def open_shm(
    name: str, max_keys: int = 0, log_capacity: int = 0, *, create: bool = True
) -> Table: ...
def open_file(
    path: str | bytes | os.PathLike[str],
    max_keys: int = 0,
    log_capacity: int = 0,
    sync: str | None = "none",
    sync_interval_ms: int = 1000,
    *,
    create: bool = True,
) -> Table: ...
def unlink_shm(name: str, *, missing_ok: bool = False) -> bool: ...
def doctor(path: str | bytes | os.PathLike[str], now_ns: int = -1) -> dict[str, Any]: ...
def table_info(table: Table, /) -> dict[str, Any]: ...
def hottest(table: Table, n: int = 10, now_ns: int = -1) -> list[dict[str, Any]]: ...
def inspect_key(
    table: Table,
    key: str | bytes,
    algorithm: int,
    quota: tuple[int, int, int],
    namespace: bytes,
    index: int = 0,
    now_ns: int = -1,
) -> dict[str, Any]: ...
def __getattr__(name: str) -> Any: ...
