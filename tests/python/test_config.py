"""floodwall.toml: discovery order, environment overrides, every validation
error's message (file, line, key, problem, what is allowed, a suggestion),
the init template's round trip, the flux-limiter conversion, named limits
in the core and the decorator, and throttled store-failure warnings.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import floodwall
from floodwall.config import (
    ConfigFileError,
    configure,
    discover,
    load,
    load_mapping,
    registry,
)
from floodwall.config.flux import convert
from floodwall.config.template import commented_template
from floodwall.errors import ConfigError


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith("FLOODWALL_"):
            monkeypatch.delenv(var)
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    yield
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def load_text(tmp_path: Path, text: str, **kw: Any) -> Any:
    return load(write(tmp_path / "floodwall.toml", text), environ=kw.pop("environ", {}))


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigFileError) as info:
        load(write(tmp_path / "floodwall.toml", text), environ=environ or {})
    return str(info.value)


# ------------------------------------------------------------------ discovery


def test_discovery_order(tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit.toml", '[store]\nnamespace = "explicit"\n')
    named = write(tmp_path / "named.toml", '[store]\nnamespace = "named"\n')
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.floodwall.store]\n'
          'namespace = "pyproject"\n')
    env = {"FLOODWALL_CONFIG": str(named)}
    # pyproject.toml alone
    assert load(cwd=tmp_path, environ={}).namespace == "pyproject"
    found = discover(cwd=tmp_path, environ={})
    assert found is not None and found.how == "pyproject.toml"
    # ./floodwall.toml wins over pyproject.toml
    write(tmp_path / "floodwall.toml", '[store]\nnamespace = "local"\n')
    assert load(cwd=tmp_path, environ={}).namespace == "local"
    # FLOODWALL_CONFIG wins over ./floodwall.toml
    assert load(cwd=tmp_path, environ=env).namespace == "named"
    # an explicit path wins over everything
    assert load(explicit, cwd=tmp_path, environ=env).namespace == "explicit"


def test_pyproject_without_tool_floodwall_is_no_configuration(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert discover(cwd=tmp_path, environ={}) is None
    config = load(cwd=tmp_path, environ={})
    assert config.values == {} and config.limits == {}
    assert config.store_url == "memory://"


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"nope\.toml: no such file"):
        load(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigFileError, match=r"\(from FLOODWALL_CONFIG\): no such file"):
        load(cwd=tmp_path, environ={"FLOODWALL_CONFIG": str(tmp_path / "gone.toml")})


def test_pyproject_errors_give_the_line_in_pyproject(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml",
                 '[project]\nname = "x"\n\n[tool.floodwall.limits.login]\nrat = "5/minute"\n')
    with pytest.raises(ConfigFileError) as info:
        load(cwd=tmp_path, environ={})
    assert str(info.value) == (
        f"{path}:5: limits.login.rat: unknown key; did you mean 'rate'? "
        "the keys of a limit are rate, algorithm, burst, cost, key, scope"
    )


def test_world_writable_configuration_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "floodwall.toml", "[store]\n")
    os.chmod(path, 0o666)
    with pytest.raises(ConfigFileError, match="writable by other users: refused"):
        load(path, environ={})


# ------------------------------------------------------------------ environment


def test_environment_overrides_single_values(tmp_path: Path) -> None:
    text = '[store]\nurl = "shm://fromfile"\nnamespace = "ns"\n[failure]\nfail = "raise"\n'
    env = {"FLOODWALL_STORE": "file:///tmp/x.fw", "FLOODWALL_FAIL": "open"}
    config = load_text(tmp_path, text, environ=env)
    assert config.store_url == "file:///tmp/x.fw"
    assert config.sources[("store", "url")] == "env FLOODWALL_STORE"
    assert config.get("failure", "fail") == "open"
    assert config.namespace == "ns"  # not overridden: the file's
    assert config.sources[("store", "namespace")].endswith("floodwall.toml:3")


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    message = error_of(tmp_path, "", {"FLOODWALL_JITTER_MS": "lots"})
    assert message == (
        "environment variable FLOODWALL_JITTER_MS: http.jitter_ms: 'lots' is not an "
        "integer; an integer >= 0 and <= 60000"
    )


# ------------------------------------------------------------------ validation


def test_wrong_type(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[http]\nheaders_on_allowed = 1\n").endswith(
        "floodwall.toml:2: http.headers_on_allowed: 1 is not a boolean; write true or false"
    )


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[defaults]\nrate = "5/minute"\nalgorthm = "gcra"\n')
    assert message.endswith(
        "floodwall.toml:3: defaults.algorthm: unknown key; did you mean 'algorithm'? "
        "the keys of [defaults] are algorithm, rate, burst, key, cost"
    )


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[limit.login]\nrate = "5/minute"\n')
    assert message.endswith(
        "floodwall.toml:1: limit: unknown section; did you mean 'limits'? the sections are "
        "store, defaults, failure, http, logging, metrics, events, limits"
    )


def test_bad_rate(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[limits.login]\nrate = "lots/minute"\n')
    assert "floodwall.toml:2: limits.login.rate: 'lots/minute' is not a rate (" in message
    assert message.endswith("a rate such as '5/minute', '10/second; 1000/day' or "
                            "'100/5minutes'")


def test_bad_store_url(tmp_path: Path) -> None:
    message = error_of(tmp_path, '\n[store]\nurl = "mysql://db/x"\n')
    assert "floodwall.toml:3: store.url: unknown store scheme 'mysql' in 'mysql://db/x'; " \
        "'memory://', 'shm://NAME'" in message
    message = error_of(tmp_path, '[store]\nurl = "localhost:6379"\n')
    assert "store.url: store must be a URL such as" in message


def test_missing_secret_variable(tmp_path: Path) -> None:
    text = '[store]\nurl = "redis://localhost/0"\nsecret_env = "FW_TEST_SECRET_UNSET"\n'
    message = error_of(tmp_path, text)
    assert message.endswith(
        "floodwall.toml:3: store.secret_env: the environment variable FW_TEST_SECRET_UNSET "
        "is not set (or empty); export FW_TEST_SECRET_UNSET=<32 random bytes, hex>, or "
        "remove secret_env"
    )


def test_secret_by_reference_reaches_the_store_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_SECRET", "s3cret")
    config = load_text(tmp_path, '[store]\nsecret_env = "FW_TEST_SECRET"\n')
    assert config.store_options()["key_secret"] == "s3cret"


def test_inline_secret_is_refused_by_default(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[store]\nsecret = "hunter2"\n')
    assert message.endswith(
        "floodwall.toml:2: store.secret: an inline secret is refused (it leaks with the "
        "file); name an environment variable instead: secret_env = \"FLOODWALL_KEY_SECRET\" "
        "(or set allow_inline_secret = true)"
    )
    config = load_text(tmp_path, '[store]\nsecret = "hunter2"\nallow_inline_secret = true\n')
    assert config.key_secret() == "hunter2"


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[store]\nurl = "shm://x"\nnamespace = \n')
    assert message.startswith(f"{tmp_path / 'floodwall.toml'}:3: is not valid TOML: ")


def test_limit_errors(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[limits.login]\nburst = 5\n").endswith(
        "floodwall.toml:1: limits.login: has no rate; add rate = '5/minute' (or another rate)"
    )
    assert error_of(tmp_path, '[limits.login]\nrate = "5/minute"\nkey = "cookie"\n').endswith(
        "floodwall.toml:3: limits.login.key: unknown key 'cookie'; 'ip', 'user', 'path' or "
        "'header:<Name>'"
    )
    assert error_of(tmp_path, '[limits.login]\nrate = "5/minute"\nburst = 0\n').endswith(
        "floodwall.toml:3: limits.login.burst: 0 is out of range; an integer >= 1"
    )
    assert error_of(tmp_path, '[limits."a b"]\nrate = "5/minute"\n').endswith(
        "limits.a b: 'a b' is not a limit name; letters, digits, '_', '-' and '.', e.g. "
        "[limits.login]"
    )
    assert error_of(tmp_path, '[limits.login]\nrate = "5/minute"\nalgorithm = "magic"\n'
                    ).endswith("floodwall.toml:3: limits.login.algorithm: 'magic' is not "
                               "allowed; one of " + ", ".join(floodwall.algorithms.ALGORITHMS))


def test_framework_mapping_is_checked_by_the_same_code(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as info:
        load_mapping({"limits": {"login": {"rate": "5/minute", "cots": 2}}},
                     "settings.FLOODWALL", environ={})
    assert str(info.value) == (
        "settings.FLOODWALL: limits.login.cots: unknown key; did you mean 'cost'? the keys "
        "of a limit are rate, algorithm, burst, cost, key, scope"
    )


def test_every_section_is_accepted(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
[store]
url = "shm://x"
options = { max_keys = 1000 }
namespace = "app"
[defaults]
algorithm = "sliding_window"
rate = "100/minute"
burst = 120
key = "user"
cost = 2
[failure]
fail = "open"
[http]
headers = "ietf"
jitter_ms = 100
trusted_proxies = ["10.0.0.0/8"]
exempt = ["/health"]
[logging]
level = "info"
[metrics]
enabled = true
port = 9464
[limits.login]
rate = "5/5minutes"
scope = "auth"
""")
    options = config.guard_options()
    assert options["store"] == "shm://x" and options["store_options"] == {"max_keys": 1000}
    assert options["namespace"] == "app" and options["algorithm"] == "sliding_window"
    assert options["default"].rate == "100/minute" and options["default"].burst == 120
    assert options["key"] == "user" and options["cost"] == 2 and options["fail"] == "open"
    assert options["headers"] == "ietf" and options["jitter_ms"] == 100
    assert options["trusted_proxies"] == ["10.0.0.0/8"] and options["exempt"] == ["/health"]
    assert config.get("metrics", "port") == 9464
    assert config.limits["login"].bucket == "auth"


# ------------------------------------------------------------------ init, flux


def test_init_template_loads_and_means_the_defaults(tmp_path: Path) -> None:
    text = commented_template()
    config = load_text(tmp_path, text)
    assert config.values == {} and config.limits == {}
    assert config.guard_options() == {}
    # every key of the schema is explained in it
    from floodwall.config.schema import SECTIONS

    for section, fields in SECTIONS.items():
        assert f"[{section}]" in text
        for key in fields:
            assert f"# {key} = " in text, key
    # uncommenting an example gives a valid value
    config = load_text(tmp_path, text.replace('# url = "shm://myapp"', 'url = "shm://myapp"'))
    assert config.store_url == "shm://myapp"


FLUX_EXAMPLE = """
# =============================================================================
# Flux Configuration
# =============================================================================
[redis]
host = "127.0.0.1"
port = 6379
pool_size = 5
timeout_ms = 200

[flux]
key_prefix = "flux:"
log_file = "flux_debug.log"
fail_silently = true        # Fail Open: Allow requests if Redis is down
console_logging = false     # Enable for dev debugging
jitter_enabled = true
jitter_max_ms = 500

[analytics]
enabled = true
port = 4444
stream = "flux:events"
retention = 100000
sample_rate = 1.0           # 1.0 = Log 100% of requests

[rate_limit]
policy = "gcra"             # Recommended: Smooths out traffic
requests = 100              # 100 requests...
period = 60                 # ...per 60 seconds

[rate_limits.api_tier_1]
requests = 1000
period = 3600
policy = "gcra"

[rate_limits.strict_login]
requests = 5
period = 300
policy = "token_bucket"
"""


def test_flux_conversion_of_the_documented_example(tmp_path: Path) -> None:
    conversion = convert(FLUX_EXAMPLE, "flux.toml")
    assert conversion.dropped == []  # everything in flux's documented example is carried
    config = load_text(tmp_path, conversion.text)
    # flux's [analytics] event stream becomes [events] on flux's Redis
    assert config.get("events", "sink") == "redis://127.0.0.1:6379/0"
    assert config.get("events", "stream") == "flux:events"
    assert config.get("events", "maxlen") == 100_000
    assert config.get("events", "sample_rate") == 1.0
    assert config.store_url == "redis://127.0.0.1:6379/0"
    assert config.get("store", "options") == {"max_connections": 5}
    assert config.get("failure", "connect_timeout") == 0.2
    assert config.namespace == "flux"
    assert config.get("failure", "fail") == "open"
    assert config.get("http", "jitter_ms") == 500
    assert config.get("logging", "file") == "flux_debug.log"
    assert config.get("logging", "console") is False
    assert config.get("metrics", "enabled") is True and config.get("metrics", "port") == 4444
    assert config.get("defaults", "algorithm") == "gcra"
    assert config.get("defaults", "rate") == "100/60s"
    assert sorted(config.limits) == ["api_tier_1", "strict_login"]
    tier = config.effective(config.limits["api_tier_1"])
    assert (tier["rate"], tier["algorithm"]) == ("1000/3600s", "gcra")
    login = config.effective(config.limits["strict_login"])
    assert (login["rate"], login["algorithm"]) == ("5/300s", "token_bucket")


def test_flux_conversion_reports_what_it_cannot_carry() -> None:
    conversion = convert('[flux]\nturbo = true\n[rate_limits.x]\nrequests = 0\nperiod = 1\n'
                         '[rate_limits.y]\nrequests = 3\nperiod = 1\npolicy = "magic"\n'
                         '[mystery]\na = 1\n')
    assert conversion.dropped == [
        "[flux] turbo: floodwall has no such setting",
        "[rate_limits.x]: requests=0, period=1: not a positive count and period, no rate "
        "written",
        "[rate_limits.y] policy = 'magic': unknown algorithm",
        "[mystery]: not a flux-limiter section floodwall knows",
    ]


# ------------------------------------------------------------------ named limits


def test_named_limiter_in_the_core(tmp_path: Path) -> None:
    configure({"limits": {"login": {"rate": "2/minute"}, "signup": {"rate": "1/hour"}}})
    login = floodwall.named_limiter("login")
    assert isinstance(login, floodwall.Limiter)
    assert floodwall.named_limiter("login") is login  # one per process
    assert [login.allow("alice") for _ in range(3)] == [True, True, False]
    # another name is another bucket, even for the same key
    assert floodwall.named_limiter("signup").allow("alice")
    with pytest.raises(ConfigError) as info:
        floodwall.named_limiter("logn")
    assert "no named limit 'logn': did you mean 'login'? known: login, signup" in str(info.value)


def test_unknown_name_fails_at_decoration_time() -> None:
    configure({"limits": {"login": {"rate": "2/minute"}}})
    with pytest.raises(ConfigError, match=r"no named limit 'lgin': did you mean 'login'\? "
                                          r"known: login"):
        floodwall.rate_limit(name="lgin")


def test_decorator_registry_names_are_the_config_ones() -> None:
    from floodwall import decorator
    from floodwall.config import registry as reg

    assert decorator.register_named_limit is reg.register_named_limit
    assert decorator.lookup_named_limit is reg.lookup_named_limit
    assert decorator.named_limits is reg.named_limits


# ------------------------------------------------------------------ logging


def test_redis_outage_logs_one_warning_per_interval(
    fresh_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from floodwall.stores import failure

    limiter = floodwall.Limiter("5/second", store=fresh_server.url + "?timeout=0.2",
                                fail="open", breaker_threshold=0)
    assert limiter.allow("k")
    fresh_server.stop()
    failure.set_warning_interval(0.5)
    try:
        with caplog.at_level(logging.WARNING, logger="floodwall"):
            for _ in range(20):
                d = limiter.check("k")
                assert d.allowed and d.fallback
            first = [r for r in caplog.records if r.name == "floodwall.store"]
            assert len(first) == 1, [r.getMessage() for r in first]
            assert "fail='open' admitted the request" in first[0].getMessage()
            time.sleep(0.6)
            for _ in range(5):
                limiter.check("k")
            records = [r for r in caplog.records if r.name == "floodwall.store"]
            assert len(records) == 2
            assert "(19 more since the last warning;" in records[1].getMessage()
    finally:
        failure.set_warning_interval(failure.LOG_INTERVAL)
        limiter.close()


def test_configuration_load_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="floodwall"):
        configure({"store": {"url": "redis://user:pw@localhost/0"}})
    messages = [r.getMessage() for r in caplog.records if r.name == "floodwall.config"]
    assert len(messages) == 1
    assert "redis://user:***@localhost/0" in messages[0] and "pw" not in messages[0]


def test_docs_list_every_key_and_environment_variable() -> None:
    from floodwall.config.schema import LIMIT_FIELDS, SECTIONS, env_fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for section, fields in SECTIONS.items():
        assert f"### `[{section}]`" in doc, section
        for key in fields:
            assert f"| `{key}` |" in doc, (section, key)
    for key in LIMIT_FIELDS:
        assert f"| `{key}` |" in doc, key
    for var, (section, key) in env_fields().items():
        assert f"| `{var}` | `{section}.{key}` |" in doc, var


def test_an_unsafe_pyproject_matters_only_if_it_configures_floodwall(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    os.chmod(path, 0o666)
    assert load(cwd=tmp_path, environ={}).values == {}  # not ours: ignored
    path.write_text('[project]\nname = "x"\n[tool.floodwall.store]\nnamespace = "evil"\n')
    with pytest.raises(ConfigFileError, match="writable by other users: refused"):
        load(cwd=tmp_path, environ={})


def test_a_key_secret_on_a_table_store_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_TEST_SECRET", "s3cret")
    configure(load_text(tmp_path, '[store]\nsecret_env = "FW_TEST_SECRET"\n'
                        '[limits.login]\nrate = "5/minute"\n'))
    with pytest.raises(ConfigFileError) as info:
        floodwall.named_limiter("login")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'floodwall.toml'}:3: limits.login: cannot be "
                              "built on the store memory://: ")
    assert message.endswith("this store takes no key secret (a table keys its fingerprints "
                            "with a random seed of its own): remove [store] secret_env / "
                            "secret")


def test_named_limits_take_the_web_failure_default(tmp_path: Path) -> None:
    """A named limit of a configuration fails open (logged, counted) unless
    [failure] fail says otherwise: a full table is not an HTTP 500."""
    text = ('[store]\nurl = "memory://"\noptions = { max_keys = 1 }\n'
            '[limits.login]\nrate = "5/hour"\n')
    limiter = load_text(tmp_path, text, environ={}).build_limiter("login")
    decisions = [limiter.check(f"client{i}") for i in range(200)]
    assert all(d.allowed for d in decisions)
    assert any(d.fallback for d in decisions)
    assert limiter.stats()["fallbacks"] == sum(d.fallback for d in decisions)
    raising = load_text(tmp_path, text + '[failure]\nfail = "raise"\n',
                        environ={}).build_limiter("login")
    with pytest.raises(floodwall.StoreFullError):
        for i in range(200):
            raising.check(f"client{i}")


def test_events_section_builds_one_sampled_sink(tmp_path: Path) -> None:
    """[events] gives the integrations one Events writing to its sink;
    a bad sample rate names the key and what is allowed."""
    from floodwall.observe.events import Events, JsonLinesSink

    path = tmp_path / "events.jsonl"
    config = load_text(tmp_path, f'[events]\nsink = "{path}"\nsample_rate = 0.5\n')
    events = config.guard_options()["events"]
    assert isinstance(events, Events) and isinstance(events.sink, JsonLinesSink)
    assert events.sample_rate == 0.5
    assert config.guard_options()["events"] is events  # one writer thread
    message = error_of(tmp_path, '[events]\nsink = "x.jsonl"\nsample_rate = 2\n')
    assert "events.sample_rate: 2 is not a share in (0, 1]" in message
