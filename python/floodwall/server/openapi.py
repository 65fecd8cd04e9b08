"""The HTTP API described once: endpoints, schemas, and the OpenAPI document built from them.

:data:`ENDPOINTS` is the one list of (method, path, handler name, summary,
request schema, answer schema); the ASGI app routes by it and
:func:`document` turns it into the OpenAPI 3.1 description served at
``/openapi.json`` and shipped as ``docs/openapi.json`` (a test keeps the
two equal; regenerate with ``python -m floodwall.server.openapi >
docs/openapi.json``). Invariant: an endpoint exists in the app if and only
if it is in ENDPOINTS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from floodwall._version import __version__
from floodwall.algorithms import ALGORITHMS

__all__ = ["ENDPOINTS", "Endpoint", "document"]

_INT64 = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_KEY = {"type": "string", "maxLength": 1024,
        "description": "the key charged (a user, an IP...): at most 1024 UTF-8 bytes"}
_KEY_B64 = {"type": "string", "maxLength": 2048, "contentEncoding": "base64",
            "description": "instead of key: the key's bytes in base64 (keys that are not UTF-8)"}
_RATE = {
    "description": "an inline rate: text such as '10/second; 1000/day', or exact parts",
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 200},
        {
            "type": "array",
            "minItems": 1,
            "maxItems": 8,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["amount", "period_ns"],
                "properties": {
                    "amount": {**_INT64, "minimum": 1},
                    "period_ns": {**_INT64, "minimum": 1},
                    "burst": {**_INT64, "minimum": 1},
                },
            },
        },
    ],
}
_LIMIT_FIELDS: dict[str, Any] = {
    "limit": {"type": "string", "description": "a named limit of the server's floodwall.toml"},
    "rate": _RATE,
    "algorithm": {"type": "string", "enum": list(ALGORITHMS),
                  "description": "inline limits only (default gcra)"},
    "namespace": {"type": "string", "minLength": 1, "maxLength": 200,
                  "description": "inline limits only: keeps limits sharing the server apart"},
}
_NOW = {**_INT64, "description": "test servers only (--test-clock): the time of this call"}

CHECK_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**_LIMIT_FIELDS, "key": _KEY, "key_b64": _KEY_B64,
                   "cost": {**_INT64, "description": "units to consume (default 1; 0 peeks)"},
                   "now_ns": _NOW},
}
STATUS_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**_LIMIT_FIELDS, "key": _KEY, "key_b64": _KEY_B64, "now_ns": _NOW},
}
PART: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**_LIMIT_FIELDS, "key": _KEY, "key_b64": _KEY_B64,
                   "cost": {**_INT64, "description": "this part's cost (default: the call's)"}},
}
CHECK_ALL_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["parts"],
    "properties": {
        "parts": {"type": "array", "minItems": 1, "maxItems": 64, "items": PART},
        "cost": {**_INT64, "description": "the cost of parts without one (default 1)"},
        "now_ns": _NOW,
    },
}
_NUM = {"type": "number", "minimum": 0}
DECISION: dict[str, Any] = {
    "type": "object",
    "required": ["allowed", "limit", "remaining", "retry_after", "reset_after", "delay",
                 "retry_after_ns", "reset_after_ns", "delay_ns", "reset_at", "rate",
                 "rate_index", "fallback", "denied_part", "retry_after_s"],
    "properties": {
        "allowed": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 0},
        "remaining": {"type": "integer", "minimum": 0},
        "retry_after": _NUM,
        "reset_after": _NUM,
        "delay": _NUM,
        "retry_after_ns": {"type": "integer", "minimum": 0},
        "reset_after_ns": {"type": "integer", "minimum": 0},
        "delay_ns": {"type": "integer", "minimum": 0},
        "reset_at": {"type": "number"},
        "rate": {"type": ["string", "null"]},
        "rate_index": {"type": ["integer", "null"], "minimum": 0},
        "fallback": {"type": "boolean"},
        "denied_part": {"type": ["integer", "null"], "minimum": 0},
        "retry_after_s": {"type": "integer", "minimum": 0,
                          "description": "HTTP Retry-After: ceil(retry_after), 0 when allowed"},
    },
}
DECISION_ANSWER = {"type": "object", "required": ["decision"],
                   "properties": {"decision": DECISION}}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
RESET_ANSWER = {"type": "object", "required": ["reset"],
                "properties": {"reset": {"type": "boolean"}}}
HEALTH = {"type": "object", "required": ["status", "version"],
          "properties": {"status": {"const": "ok"}, "version": {"type": "string"},
                         "store": {"type": "string"}}}
LIMITS: dict[str, Any] = {
    "type": "object",
    "required": ["limits"],
    "properties": {
        "limits": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "rate", "algorithm", "limit", "cost"],
                "properties": {"name": {"type": "string"}, "rate": {"type": "string"},
                               "algorithm": {"type": "string"},
                               "limit": {"type": "integer"}, "cost": {"type": "integer"}},
            },
        }
    },
}
LIMIT_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["limit"],
    "properties": {"limit": LIMITS["properties"]["limits"]["items"], "decision": DECISION},
}
STATS_REQUEST = {"type": "object", "additionalProperties": False,
                 "properties": {"now_ns": _NOW}}
STATS = {"type": "object", "required": ["stats"],
         "properties": {"stats": {"type": "object",
                                  "additionalProperties": {"type": "integer"}}}}
CLEAR_REQUEST = {"type": "object", "additionalProperties": False, "properties": {}}
CLEAR = {"type": "object", "required": ["cleared"], "properties": {"cleared": {"const": True}}}
DOCTOR = {"type": "object", "required": ["ok", "store"],
          "properties": {"ok": {"type": "boolean"}, "store": {"type": "string"}}}


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API."""

    method: str
    path: str
    handler: str
    summary: str
    request: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    media: str = "application/json"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/health", "health", "The server is up.", None, HEALTH),
    Endpoint("GET", "/v1/limits", "limits", "The named limits of the configuration.",
             None, LIMITS),
    Endpoint("GET", "/v1/limits/{name}", "limit_status",
             "One named limit, and with ?key= its state for that key (nothing consumed).",
             None, LIMIT_STATUS),
    Endpoint("POST", "/v1/check", "check",
             "Check and consume `cost` units of a limit (named or inline) for a key. "
             "A denial is a 200 answer with allowed=false.", CHECK_REQUEST, DECISION_ANSWER),
    Endpoint("POST", "/v1/check-all", "check_all",
             "Decide several parts all-or-nothing, each with its own cost; a denial "
             "names its part (denied_part) and consumes nothing.",
             CHECK_ALL_REQUEST, DECISION_ANSWER),
    Endpoint("POST", "/v1/status", "status",
             "The decision one unit would get now, consuming nothing.",
             STATUS_REQUEST, DECISION_ANSWER),
    Endpoint("POST", "/v1/reset", "reset", "Forget a key: back to full capacity.",
             STATUS_REQUEST, RESET_ANSWER),
    Endpoint("POST", "/v1/stats", "stats",
             "The store's counters (active keys, slots...), shared by every worker.",
             STATS_REQUEST, STATS),
    Endpoint("POST", "/v1/clear", "clear",
             "Forget every key of the table (servers started with --allow-clear only).",
             CLEAR_REQUEST, CLEAR),
    Endpoint("GET", "/v1/doctor", "doctor", "The store's health and counters.", None, DOCTOR),
    Endpoint("GET", "/metrics", "metrics", "Prometheus text exposition.", None,
             {"type": "string"}, "text/plain"),
    Endpoint("GET", "/openapi.json", "openapi", "This description.", None, {"type": "object"}),
)

_ERRORS = {
    "400": "a request the server will not decide (the body says why)",
    "401": "no token, or a wrong one",
    "403": "the operation is disabled on this server",
    "404": "no such endpoint or named limit",
    "405": "the method is not allowed on this path",
    "408": "the body did not arrive in time",
    "413": "the body is too large",
    "431": "too many header fields",
    "503": "the server's store could not decide, or the worker is at its concurrency bound",
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of :data:`ENDPOINTS`."""
    paths: dict[str, Any] = {}
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for ep in ENDPOINTS:
        op: dict[str, Any] = {
            "operationId": ep.handler,
            "summary": ep.summary,
            "responses": {
                "200": {"description": "the answer",
                        "content": {ep.media: {"schema": ep.answer or {}}}},
                **{code: {"description": text, "content": error_body}
                   for code, text in _ERRORS.items()},
            },
        }
        if ep.path == "/v1/limits/{name}":
            op["parameters"] = [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "key", "in": "query", "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 1024}},
            ]
        if ep.request is not None:
            op["requestBody"] = {"required": bool(ep.request.get("required")),
                                 "content": {"application/json": {"schema": ep.request}}}
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "floodwall serve",
            "version": __version__,
            "description": "floodwall's rate limits over HTTP/JSON (docs/server.md).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document_text() -> str:
    """The description as shipped in docs/openapi.json."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates docs/openapi.json
    print(document_text(), end="")
