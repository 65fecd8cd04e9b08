# Damaged tables: flipped header bytes, truncated files, a wrong version,
# garbage, impossible slots. Each time: a clear error naming the path and
# the problem, and the file left exactly as it was (bytes and mtime).
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import floodwall
from floodwall import _native, ops
from floodwall.errors import StoreError
from floodwall.stores import shared

HEADER = 4096
FIXED_PART = 72  # bytes covered by the magic/version check and the checksum
SLOT = 64
NEWER = _native.TABLE_LAYOUT_VERSION + 1


@pytest.fixture(scope="module")
def good_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    path = tmp_path_factory.mktemp("good") / "good.fw"
    url = f"file://{path}"
    lim = floodwall.Limiter("10/hour", store=url, max_keys=100)
    for i in range(20):
        lim.check(f"user-{i}", 3)
    del lim
    shared.forget(url)
    yield path.read_bytes()


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def expect_rejected(path: Path, phrase: str, error: type[BaseException] = StoreError) -> str:
    """Opening and doctoring `path` fail clearly and leave it unchanged."""
    before = fingerprint(path)
    listing = sorted(os.listdir(path.parent))
    url = f"file://{path}"
    with pytest.raises(error) as info:
        floodwall.Limiter("10/hour", store=url)
    message = str(info.value)
    assert str(path) in message, message
    assert phrase in message, message
    report = ops.doctor(path)
    assert report["ok"] is False and phrase in report["problem"], report
    assert fingerprint(path) == before
    assert sorted(os.listdir(path.parent)) == listing  # no temporary file left
    shared.forget(url)
    return message


def damaged(tmp_path: Path, data: bytes, change: Callable[[bytearray], bytes | bytearray]) -> Path:
    path = tmp_path / f"bad-{uuid.uuid4().hex[:8]}.fw"
    path.write_bytes(bytes(change(bytearray(data))))
    return path


def flip(offset: int, mask: int = 0x01) -> Callable[[bytearray], bytearray]:
    def change(b: bytearray) -> bytearray:
        b[offset] ^= mask
        return b

    return change


def test_good_table_opens(tmp_path: Path, good_table: bytes) -> None:
    path = damaged(tmp_path, good_table, lambda b: b)
    lim = floodwall.Limiter("10/hour", store=f"file://{path}")
    assert lim.peek("user-3").remaining == 7
    assert ops.doctor(path)["ok"]


@pytest.mark.parametrize("offset", range(FIXED_PART))
def test_every_flipped_header_byte_is_caught(
    tmp_path: Path, good_table: bytes, offset: int
) -> None:
    path = damaged(tmp_path, good_table, flip(offset, 0x10))
    if offset < 8:
        phrase = "not a floodwall table"
    elif offset < 12:
        phrase = "layout version"
    else:
        phrase = "damaged header"
    expect_rejected(path, phrase)


@pytest.mark.parametrize(
    ("name", "change", "phrase"),
    [
        ("magic", flip(0), "not a floodwall table"),
        ("max_keys", flip(32, 0x40), "damaged header"),
        ("seed", flip(45), "damaged header"),
        ("checksum", flip(64), "damaged header"),
        ("version 1", lambda b: b[:8] + struct.pack("<I", 1) + b[12:], "older floodwall"),
        ("newer version", lambda b: b[:8] + struct.pack("<I", NEWER) + b[12:],
         f"version {NEWER}"),
        ("version 0", lambda b: b[:8] + struct.pack("<I", 0) + b[12:], "version 0"),
    ],
)
def test_named_header_damage(
    tmp_path: Path,
    good_table: bytes,
    name: str,
    change: Callable[[bytearray], bytearray],
    phrase: str,
) -> None:
    message = expect_rejected(damaged(tmp_path, good_table, change), phrase)
    if "version" in name:
        assert f"reads version {_native.TABLE_LAYOUT_VERSION}" in message


@pytest.mark.parametrize(
    ("length", "phrase"),
    [
        (0, "is empty"),
        (5, "not a floodwall table"),
        (100, "truncated"),
        (HEADER, "truncated"),
        (HEADER + SLOT, "truncated"),
        (-1, "truncated"),
    ],
)
def test_truncated(tmp_path: Path, good_table: bytes, length: int, phrase: str) -> None:
    size = len(good_table) + length if length < 0 else length
    message = expect_rejected(damaged(tmp_path, good_table, lambda b: b[:size]), phrase)
    if length >= HEADER:
        assert f"{size} bytes" in message and f"needs {len(good_table)}" in message


def test_garbage(tmp_path: Path, good_table: bytes) -> None:
    expect_rejected(
        damaged(tmp_path, good_table, lambda b: os.urandom(len(b))), "not a floodwall table"
    )
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a table\n" * 400)
    expect_rejected(text, "not a floodwall table")


def test_directory_and_device(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        floodwall.Limiter("1/second", store=f"file://{tmp_path}")
    with pytest.raises(StoreError, match="not a regular file"):
        floodwall.Limiter("1/second", store="file:///dev/null")


def test_unreadable(tmp_path: Path, good_table: bytes) -> None:
    path = damaged(tmp_path, good_table, lambda b: b)
    path.chmod(0o400)
    # root ignores file modes: the check runs in a child that drops to nobody
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 5
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                floodwall.Limiter("1/second", store=f"file://{path}")
                code = 2
            except PermissionError as exc:
                code = 0 if str(path) in str(exc) else 3
            except BaseException:
                code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_impossible_slot_found_by_doctor(tmp_path: Path, good_table: bytes) -> None:
    # an unused slot (tag 0) holding a state: impossible for the engine
    data = bytearray(good_table)
    for offset in range(HEADER, len(data), SLOT):
        if data[offset : offset + 8] == bytes(8):
            data[offset + 8 : offset + 16] = struct.pack("<Q", 42)
            bad_slot = (offset - HEADER) // SLOT
            break
    path = tmp_path / "bad-slot.fw"
    path.write_bytes(bytes(data))
    before = fingerprint(path)
    report = ops.doctor(path)
    assert report["ok"] is False
    assert report["bad_slots"] == 1 and report["first_bad_slot"] == bad_slot
    assert "unused slot" in report["problem"] and str(path) in report["problem"]
    assert fingerprint(path) == before


def test_larger_max_keys_leaves_file_alone(tmp_path: Path, good_table: bytes) -> None:
    path = damaged(tmp_path, good_table, lambda b: b)
    before = fingerprint(path)
    with pytest.raises(StoreError, match="max_keys=100.*max_keys=5000.*cannot grow"):
        floodwall.Limiter("1/second", store=f"file://{path}?max_keys=5000")
    assert fingerprint(path) == before


def test_copy_of_a_table_still_works(tmp_path: Path, good_table: bytes) -> None:
    # a backup restored elsewhere keeps its state
    path = damaged(tmp_path, good_table, lambda b: b)
    copy = tmp_path / "restored" / "copy.fw"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert floodwall.Limiter("10/hour", store=f"file://{copy}").peek("user-0").remaining == 7


def test_shm_garbage_left_alone() -> None:
    name = f"fwtest-bad-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    dev = Path("/dev/shm") / name
    assert dev.parent.is_dir(), "shm:// needs /dev/shm"
    junk = os.urandom(8192)
    dev.write_bytes(junk)
    try:
        with pytest.raises(StoreError, match=f"{name}.*not a floodwall table"):
            floodwall.Limiter("1/second", store=f"shm://{name}")
        assert dev.read_bytes() == junk
        report = ops.doctor(f"shm://{name}")
        assert report["ok"] is False and "not a floodwall table" in report["problem"]
    finally:
        shared.unlink_shm(name)
