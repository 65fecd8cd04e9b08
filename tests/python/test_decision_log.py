"""DEBUG ``floodwall.decision`` records: one per request decided by a web
integration (Flask here; the shared path in integrations/_common.py), with
the right outcomes and the key as a hashed id, never raw unless
``[logging] raw_keys = true``; none at INFO.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
import pytest

from floodwall.config import logsetup
from floodwall.config.loading import load_mapping
from floodwall.integrations.flask import Floodwall

CLIENT_IP = "198.51.100.23"


def make_client(limit: str = "3/minute") -> Any:
    app = flask.Flask(__name__)
    fw = Floodwall(default=limit, store="memory://")

    @app.route("/items")
    def items() -> str:
        return "ok"

    fw.init_app(app)
    c = app.test_client()
    c.environ_base.update({"REMOTE_ADDR": CLIENT_IP})
    return c


def decision_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "floodwall.decision"]


def test_one_debug_record_per_request_hashed_key(caplog: pytest.LogCaptureFixture) -> None:
    c = make_client()
    with caplog.at_level(logging.DEBUG, logger="floodwall"):
        statuses = [c.get("/items").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    records = decision_records(caplog)
    assert len(records) == 5
    outcomes = [r.decision["outcome"] for r in records]  # type: ignore[attr-defined]
    assert outcomes == ["allowed", "allowed", "allowed", "denied", "denied"]
    assert [r.decision["remaining"] for r in records] == [2, 1, 0, 0, 0]  # type: ignore[attr-defined]
    assert records[3].decision["retry_after"] > 0  # type: ignore[attr-defined]
    for r in records:
        assert r.levelno == logging.DEBUG
        text = r.getMessage()
        assert CLIENT_IP not in text and CLIENT_IP not in repr(r.__dict__)
        ids = r.decision["key_id"]  # type: ignore[attr-defined]
        assert len(ids) == 1 and len(ids[0]) == 32 and ids[0] in text
    # one client, one bucket: the same id on every record
    assert len({r.decision["key_id"][0] for r in records}) == 1  # type: ignore[attr-defined]


def test_no_record_at_info(caplog: pytest.LogCaptureFixture) -> None:
    c = make_client()
    with caplog.at_level(logging.INFO, logger="floodwall"):
        for _ in range(4):
            c.get("/items")
    assert decision_records(caplog) == []


def test_raw_keys_true_shows_the_key(caplog: pytest.LogCaptureFixture) -> None:
    logsetup.apply(load_mapping({"logging": {"raw_keys": True}}, "test"))
    try:
        assert logsetup.raw_keys() is True
        c = make_client()
        with caplog.at_level(logging.DEBUG, logger="floodwall"):
            c.get("/items")
    finally:
        logsetup.apply(load_mapping({}, "test"))
    assert logsetup.raw_keys() is False
    records = decision_records(caplog)
    assert len(records) == 1
    assert CLIENT_IP in records[0].getMessage()
    assert "key_id" not in records[0].decision  # type: ignore[attr-defined]


def test_asgi_on_redis_awaited_path(caplog: pytest.LogCaptureFixture, redis_url: str) -> None:
    """A network store: the integration awaits acheck (not the inline path)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from floodwall.integrations.asgi import Floodwall as AsgiFloodwall

    app = FastAPI()
    AsgiFloodwall("2/minute", store=redis_url).init_app(app)

    @app.get("/items")
    async def items() -> dict[str, str]:
        return {"ok": "items"}

    c = TestClient(app, client=(CLIENT_IP, 40000))
    with caplog.at_level(logging.DEBUG, logger="floodwall"):
        statuses = [c.get("/items").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    records = decision_records(caplog)
    outcomes = [r.decision["outcome"] for r in records]  # type: ignore[attr-defined]
    assert outcomes == ["allowed", "allowed", "denied", "denied"]
    assert all(CLIENT_IP not in r.getMessage() for r in records)
