"""The command line: `floodwall demo` shows a burst admitted then limited;
`floodwall doctor` reports a healthy table and a damaged one, read-only; the
package wiring (one module per command, three entry points) and exit codes.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import floodwall
from floodwall.cli import COMMANDS, build_parser, main


def run_cli(*args: str, module: str = "floodwall") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60
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


def test_demo_waits_retry_after_then_is_admitted() -> None:
    out = run_cli("demo", "--rate", "2/100ms", "--requests", "3")
    assert out.returncode == 0, out.stderr
    assert "2 of 3 admitted; capacity 2" in out.stdout
    assert "after the wait: allowed" in out.stdout


@pytest.mark.parametrize("module", ["floodwall", "floodwall.cli"])
def test_every_entry_point_runs_the_same_cli(module: str) -> None:
    out = run_cli("--version", module=module)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"floodwall {floodwall.__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("floodwall")
    assert script.exists(), f"pyproject's [project.scripts] entry is missing: {script}"
    out = subprocess.run(
        [str(script), "demo", "--rate", "1/minute", "--requests", "2", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "1 of 2 admitted; capacity 1" in out.stdout


def test_usage_errors_exit_2() -> None:
    out = run_cli()
    assert out.returncode == 2
    assert "required: COMMAND" in out.stderr
    out = run_cli("launch")
    assert out.returncode == 2 and "invalid choice: 'launch'" in out.stderr
    out = run_cli("demo", "--algorithm", "magic")
    assert out.returncode == 2 and "invalid choice: 'magic'" in out.stderr


def test_help_lists_every_command_with_its_help() -> None:
    text = build_parser().format_help()
    for name, module in COMMANDS.items():
        assert name in text and module.HELP in text


def test_one_module_per_command() -> None:
    assert set(COMMANDS) == {
        "demo", "doctor", "init", "config", "limits", "status", "check", "reset", "top", "stats",
        "serve",
    }
    for name, module in COMMANDS.items():
        assert module is importlib.import_module(f"floodwall.cli.{name}")
        assert module.__doc__ and module.__doc__.startswith(f"``floodwall {name}")
        assert callable(module.add_arguments) and callable(module.run)


def test_store_error_exits_2_with_its_message(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--store", "nosuch://x", "--requests", "1"]) == 2
    assert "floodwall: error:" in capsys.readouterr().err


def test_doctor_on_a_missing_table_names_it(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.fw"
    assert main(["doctor", str(missing)]) == 2
    assert f"cannot read {missing}" in capsys.readouterr().err
