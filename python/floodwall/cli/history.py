"""``floodwall history LIMIT CLIENT``: a client's recent decisions, from the event sink.

Decision events (:mod:`floodwall.observe.events`) carry hashed keys only;
this command hashes CLIENT the same way (:func:`floodwall.hooks.key_id`) and
lists the newest matching events of LIMIT from ``--events``: a ``redis://``
URL (``--stream``, default ``floodwall:events``) or a JSON-lines file (and
its rotated backups). CLIENT is tried as given and as the integrations key
it (``LIMIT|CLIENT``, and the named limit's key when the configuration has
one); ``--raw``: exactly as given. Exit 0 when events were found, 1 if none.
"""

from __future__ import annotations

import argparse
import datetime
import os

from floodwall.cli._target import emit
from floodwall.errors import ConfigError, FloodwallError

HELP = "a client's recent decisions, from the event sink"

EVENTS_ENV = "FLOODWALL_EVENTS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall history``."""
    parser.add_argument("limit", help="the limit's name (as in the events)")
    parser.add_argument("client", help="the client (an IP, a user id...) or, with --raw, the key")
    parser.add_argument("--raw", action="store_true", help="CLIENT is the exact key")
    parser.add_argument("--events", metavar="SINK",
                        help=f"redis:// URL or JSON-lines file (default: ${EVENTS_ENV})")
    parser.add_argument("--stream", default=None, help="the Redis stream name")
    parser.add_argument("-n", type=int, default=20, help="how many (default 20, at most 10000)")
    parser.add_argument("--config", metavar="PATH", help="floodwall.toml (for named limits)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def candidate_keys(limit: str, client: str, raw: bool, config: str | None) -> list[str]:
    """The keys CLIENT may have been charged under."""
    if raw:
        return [client]
    keys = [client, f"{limit}|{client}"]
    try:
        from argparse import Namespace

        from floodwall.cli._target import target

        t = target(Namespace(limit=limit, client=client, raw=False, config=config, store=None),
                   shared=False)
        keys.append(t.key)
    except (FloodwallError, OSError):
        pass  # no configuration naming this limit: the plain forms only
    return list(dict.fromkeys(keys))


def run(args: argparse.Namespace) -> int:
    """Print the newest events of the client."""
    from floodwall.hooks import key_id
    from floodwall.observe.events import DEFAULT_STREAM, RedisStreamSink, open_sink

    if not 1 <= args.n <= 10_000:
        raise ConfigError(f"-n must be between 1 and 10000, got {args.n}")
    source = args.events or os.environ.get(EVENTS_ENV)
    if not source:
        raise ConfigError(f"--events SINK is needed (or ${EVENTS_ENV}): a redis:// URL or a file")
    options = {}
    if args.stream:
        options["stream"] = args.stream
    sink = open_sink(source, **options)
    keys = candidate_keys(args.limit, args.client, args.raw, args.config)
    ids = {key_id(k): k for k in keys}
    try:
        rows = sink.read(args.limit, ids, args.n)
    finally:
        sink.close()
    stream = args.stream or DEFAULT_STREAM if isinstance(sink, RedisStreamSink) else None
    lines = [f"history of {args.client} on {args.limit} (newest first, from {source}"
             + (f" stream {stream}" if stream else "") + "):"]
    for r in rows:
        when = datetime.datetime.fromtimestamp(float(r.get("t", 0)), datetime.UTC)
        fb = "  (fallback)" if r.get("fallback") else ""
        lines.append(f"  {when:%Y-%m-%d %H:%M:%S.%f}Z  {r.get('outcome', '?'):<8} "
                     f"cost {r.get('cost')}  remaining {r.get('remaining')}{fb}")
    if not rows:
        lines.append("  (no events: the client made no request in the retained events, "
                     "or events are sampled)")
    key = key_id(keys[0] if args.raw else keys[1])
    emit(args, "\n".join(lines), {"limit": args.limit, "client": args.client, "key": key,
                                  "keys": sorted(ids), "events": rows})
    return 0 if rows else 1
