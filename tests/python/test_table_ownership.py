"""Who may own a shm:// or file:// table, tried as a second local user.

The tests run as root in CI; each case forks a child that drops to
``nobody`` (setgid/setuid) and plays the other user: it squats a name, plants
a link, swaps a table through a directory it can write, or tries to use a
table root made world-writable. Nothing is
skipped: without root to drop from, the tests fail saying so. Also: hostile
shm names, temporaries of crashed creators, dangling links, and a doctor
pointed at a FIFO.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import floodwall
from floodwall import ops
from floodwall.cli import main as cli_main
from floodwall.errors import ConfigError, StoreError
from floodwall.stores import shared

NOBODY = 65534
SHM = Path("/dev/shm")


def as_nobody(action: Callable[[], object], timeout: float = 30.0) -> None:
    """Run ``action`` in a child that dropped to nobody; re-raise its failure."""
    if os.geteuid() != 0:
        pytest.fail("these tests need root, to act as a second user (nobody)")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode()[-4000:])
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child acting as nobody did not finish in {timeout} s")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report


def digest(path: Path) -> tuple[str, int, int]:
    """Content, mode and owner of ``path`` (not following a link)."""
    st = os.lstat(path)
    data = b"" if stat.S_ISLNK(st.st_mode) else path.read_bytes()
    return hashlib.sha256(data).hexdigest(), st.st_mode, st.st_uid


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A /tmp-like directory: world-writable and sticky, reachable by nobody."""
    path = Path(tempfile.mkdtemp(prefix="fw-owner-"))
    path.chmod(0o1777)
    yield path
    shared.forget()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shm_name() -> Iterator[str]:
    name = f"fwtest-owner-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    shared.forget(f"shm://{name}")
    try:
        (SHM / name).unlink()
    except FileNotFoundError:
        pass


# ---- a second user against our tables, and we against theirs ----------------------


def test_other_user_cannot_use_a_world_writable_table(shared_dir: Path, shm_name: str) -> None:
    table = shared_dir / "limits.fw"
    floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
    floodwall.Limiter("3/minute", store=f"shm://{shm_name}").allow("k")
    table.chmod(0o666)
    (SHM / shm_name).chmod(0o666)
    before = digest(table), digest(SHM / shm_name)

    def attempt() -> None:
        for url, path in ((f"file://{table}", str(table)), (f"shm://{shm_name}", shm_name)):
            with pytest.raises(StoreError) as info:
                floodwall.Limiter("3/minute", store=url)
            text = str(info.value)
            assert path in text and "uid 0 (root)" in text and "0666" in text, text

    as_nobody(attempt)
    assert (digest(table), digest(SHM / shm_name)) == before


def test_squatted_names_are_refused_and_left_alone(shared_dir: Path, shm_name: str) -> None:
    table = shared_dir / "limits.fw"
    squat_shm = SHM / shm_name

    def squat() -> None:
        # a valid-looking table of their own, world-writable, at our path ...
        floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
        table.chmod(0o666)
        # ... and the shm squat: an empty object, mode 0666
        fd = os.open(squat_shm, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)

    as_nobody(squat)
    shared.forget()
    before = digest(table), digest(squat_shm)
    for url, what in ((f"file://{table}", str(table)), (f"shm://{shm_name}", shm_name)):
        with pytest.raises(StoreError) as info:
            floodwall.Limiter("3/minute", store=url)
        text = str(info.value)
        assert what in text and "uid 65534 (nobody)" in text and "0666" in text, text
        assert "rm '" in text, text  # says how to fix it
    assert (digest(table), digest(squat_shm)) == before
    assert squat_shm.stat().st_size == 0  # never formatted in place


def test_private_table_of_another_user_is_refused(shared_dir: Path) -> None:
    table = shared_dir / "theirs.fw"
    as_nobody(lambda: floodwall.Limiter("3/minute", store=f"file://{table}").allow("k"))
    assert table.stat().st_uid == NOBODY and stat.S_IMODE(table.stat().st_mode) == 0o600
    before = digest(table)
    with pytest.raises(StoreError, match="uid 65534"):
        floodwall.Limiter("3/minute", store=f"file://{table}")
    with pytest.raises(StoreError, match="uid 65534"):
        ops.hottest(f"file://{table}")
    assert digest(table) == before


def test_unprivileged_user_uses_its_own_tables(shared_dir: Path, shm_name: str) -> None:
    table = shared_dir / "mine.fw"

    def own() -> None:
        for url in (f"file://{table}", f"shm://{shm_name}"):
            lim = floodwall.Limiter("2/minute", store=url)
            assert [lim.allow("k") for _ in range(3)] == [True, True, False]
            again = floodwall.Limiter("2/minute", store=url)
            assert again.peek("k").remaining == 0

    as_nobody(own)


def test_table_in_a_directory_another_user_can_write_is_refused(
    shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the directory, not the file, lets nobody swap the table between runs
    room = shared_dir / "room"
    room.mkdir(mode=0o700)
    table = room / "limits.fw"
    floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
    shared.forget()
    room.chmod(0o777)
    before = digest(table)
    with pytest.raises(StoreError) as info:
        floodwall.Limiter("3/minute", store=f"file://{table}")
    text = str(info.value)
    assert f"its directory {room}" in text and "0777" in text, text
    assert "sticky" in text and f"chmod go-w '{room}'" in text, text
    report = ops.doctor(table)
    assert report["ok"] is False and str(room) in report["problem"], report
    assert report["bad_slots"] == 0
    assert cli_main(["doctor", str(table)]) == 1  # `floodwall doctor`: a problem
    assert f"its directory {room}" in capsys.readouterr().out

    assert digest(table) == before

    def take_away() -> None:  # what the check is for: nobody can move it
        os.rename(table, room / "kept.fw")

    as_nobody(take_away)
    # the service does not start afresh (limits reset) in nobody's hands
    with pytest.raises(StoreError, match="its directory"):
        floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
    assert not table.exists()
    assert digest(room / "kept.fw") == before
    # sticky (as /tmp is): each entry is its owner's to replace
    room.chmod(0o1777)
    kept = floodwall.Limiter("3/minute", store=f"file://{room}/kept.fw")
    assert kept.peek("k").remaining == 2
    assert ops.doctor(room / "kept.fw")["ok"] is True


def test_table_in_another_users_directory_is_refused(shared_dir: Path) -> None:
    room = shared_dir / "theirs"

    def make_room() -> None:
        room.mkdir(mode=0o755)

    as_nobody(make_room)
    table = room / "limits.fw"
    with pytest.raises(StoreError) as info:
        floodwall.Limiter("3/minute", store=f"file://{table}")
    text = str(info.value)
    assert f"its directory {room}" in text and "uid 65534 (nobody)" in text, text
    assert "0755" in text and f"chown 0 '{room}'" in text, text
    assert not table.exists()

    # nobody uses its own table in its own directory, and root's doctor
    # judges that as nobody's stores would: sound
    as_nobody(lambda: floodwall.Limiter("3/minute", store=f"file://{table}").allow("k"))
    assert ops.doctor(table)["ok"] is True
    with pytest.raises(StoreError, match="uid 65534"):
        floodwall.Limiter("3/minute", store=f"file://{table}")


def test_planted_symlink_is_not_followed(shared_dir: Path, tmp_path: Path) -> None:
    ours = tmp_path / "ours.fw"
    floodwall.Limiter("3/minute", store=f"file://{ours}").allow("k")
    # another user's table, reachable through a link they plant at our path
    theirs = shared_dir / "theirs.fw"
    link = shared_dir / "limits.fw"

    def plant() -> None:
        floodwall.Limiter("3/minute", store=f"file://{theirs}").allow("k")
        link.symlink_to(theirs)

    as_nobody(plant)
    before = digest(theirs)
    with pytest.raises(StoreError, match="symbolic link"):
        floodwall.Limiter("3/minute", store=f"file://{link}")
    assert digest(theirs) == before
    # and a link to a table of our own is refused the same way, even while
    # this process has the table itself open
    own_link = tmp_path / "link.fw"
    own_link.symlink_to(ours)
    open_one = floodwall.Limiter("3/minute", store=f"file://{ours}")
    before = digest(ours)
    with pytest.raises(StoreError, match="symbolic link.*ours.fw"):
        floodwall.Limiter("3/minute", store=f"file://{own_link}")
    assert digest(ours) == before
    assert open_one.peek("k").remaining == 2


def test_dangling_symlink_is_named_at_once(tmp_path: Path) -> None:
    link = tmp_path / "limits.fw"
    link.symlink_to(tmp_path / "gone" / "limits.fw")
    started = time.monotonic()
    with pytest.raises(StoreError, match="symbolic link.*does not exist") as info:
        floodwall.Limiter("3/minute", store=f"file://{link}")
    assert time.monotonic() - started < 2
    assert "disappearing" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["limits.fw"]


# ---- objects floodwall did not make ------------------------------------------------


@pytest.mark.parametrize("content", [b"", bytes(8) + b"\x5a" * 8184], ids=["empty", "zeros"])
def test_shm_object_floodwall_did_not_make_is_left_alone(shm_name: str, content: bytes) -> None:
    path = SHM / shm_name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    before = digest(path)
    with pytest.raises(StoreError, match=f"{shm_name}.*(empty|not a floodwall table)"):
        floodwall.Limiter("3/minute", store=f"shm://{shm_name}")
    assert digest(path) == before


def test_temporaries_of_a_crashed_creator_are_removed(tmp_path: Path) -> None:
    table = tmp_path / "limits.fw"
    child = os.fork()
    if child == 0:  # pragma: no cover - child
        os._exit(0)
    os.waitpid(child, 0)  # a creator that is dead now
    stale = tmp_path / f".limits.fw.new-{child}-Ab12Cd"
    fresh = tmp_path / f".limits.fw.new-{child}-Ef34Gh"
    alive = tmp_path / f".limits.fw.new-{os.getppid()}-Ij56Kl"
    for temp in (stale, fresh, alive):
        with open(temp, "wb") as f:
            f.truncate(64 << 20)  # full size, as a crashed creator leaves it
    old = time.time() - 60
    os.utime(stale, (old, old))
    os.utime(alive, (old, old))
    floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
    names = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in names  # dead creator, a minute old: removed
    assert fresh.name in names  # a second old: maybe another namespace's
    assert alive.name in names  # its creator lives
    # a temporary's name cannot be used for a table
    with pytest.raises(ConfigError, match="temporary"):
        floodwall.Limiter("3/minute", store=f"file://{tmp_path}/.x.fw.new-12-abcdef")


# ---- one check of shm names ----------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/b", "with space", ".x.new-1-abcdef"])
def test_hostile_shm_names(name: str) -> None:
    with pytest.raises(ConfigError, match="shm name"):
        floodwall.Limiter("1/second", store=f"shm://{name}")
    with pytest.raises(ConfigError, match="shm name"):
        ops.doctor(f"shm://{name}")
    with pytest.raises(ConfigError, match="shm name"):
        ops.hottest(f"shm://{name}")
    with pytest.raises(ConfigError, match="shm name"):
        shared.unlink_shm(name)


def test_shm_path_is_the_one_check() -> None:
    assert shared.shm_path("api") == "/dev/shm/api"
    for bad in ("x\x00y", "", "../x"):
        with pytest.raises(ConfigError):
            shared.shm_path(bad)
    with pytest.raises(ConfigError, match="shm name"):
        floodwall.Limiter("1/second", store="shm://x%2F..%2F..%2Fetc%2Fpasswd")


def test_doctor_of_shm_reads_nothing_outside_dev_shm(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"FLOODWL\0 not really")
    relative = os.path.relpath(secret, "/dev/shm")
    with pytest.raises(ConfigError):
        ops.doctor(f"shm://{relative}")


# ---- the doctor never blocks, never writes ------------------------------------------


def test_doctor_on_fifo_device_directory(tmp_path: Path) -> None:
    fifo = tmp_path / "table.fifo"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            signal.alarm(10)
            reports = [ops.doctor(p) for p in (fifo, tmp_path, Path("/dev/null"))]
            kinds = ["FIFO", "directory", "character device"]
            good = all(
                r["ok"] is False and k in r["problem"] for r, k in zip(reports, kinds)
            )
            code = 0 if good else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 15
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("doctor blocked on a FIFO")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_doctor_reports_world_writable_table(tmp_path: Path) -> None:
    table = tmp_path / "limits.fw"
    floodwall.Limiter("3/minute", store=f"file://{table}").allow("k")
    shared.forget()
    assert ops.doctor(table)["ok"] is True
    table.chmod(0o666)
    before = digest(table)
    report = ops.doctor(table)
    assert report["ok"] is False and "0666" in report["problem"]
    assert report["bad_slots"] == 0
    assert digest(table) == before
