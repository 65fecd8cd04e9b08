# The command line: `floodwall demo` shows a burst admitted then limited;
# `floodwall doctor` reports a healthy table and a damaged one, read-only.
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import floodwall
from floodwall.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floodwall", *args], capture_output=True, text=True, timeout=60
    )


def test_demo_admits_the_burst_then_limits() -> None:
    out = run_cli("demo", "--rate", "3/minute", "--requests", "5", "--no-wait")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(" allowed " in line for line in lines) == 3
    assert sum(" LIMITED " in line for line in lines) == 2
    assert "3 of 5 admitted; capacity 3" in out.stdout


def test_demo_bad_rate_is_a_clear_error(capsys) -> None:
    assert main(["demo", "--rate", "lots/minute"]) == 2
    assert "invalid rate 'lots/minute'" in capsys.readouterr().err


def test_doctor_healthy_and_damaged(tmp_path: Path, capsys) -> None:
    path = tmp_path / "limits.fw"
    limiter = floodwall.Limiter("5/minute", store=f"file://{path}")
    assert limiter.allow("k")
    assert main(["doctor", str(path)]) == 0
    assert "True" in capsys.readouterr().out
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the checksummed header
    damaged = tmp_path / "damaged.fw"
    damaged.write_bytes(bytes(data))
    assert main(["doctor", str(damaged)]) == 1
    assert damaged.read_bytes() == bytes(data)  # read-only
    assert main(["doctor", str(tmp_path / "missing.fw")]) == 2
