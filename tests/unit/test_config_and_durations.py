from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RetryPolicy, load_config
from engine.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("1m30s", 90),
        ("1m 30s", 90),
        ("500ms", 0.5),
        ("60 sec", 60),
        ("2h", 7200),
        ("PT10S", 10),
        ("PT1M30S", 90),
        ("P1D", 86400),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1s", "1h30", "PTX"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_like_restate() -> None:
    assert [format_duration(s) for s in (86400, 60, 0.5, 90, 0)] == ["1d", "1m", "500ms", "1m 30s", "0s"]


def test_config_layers(tmp_path: Path) -> None:
    toml = tmp_path / "quill.toml"
    toml.write_text('ingress_port = 1000\npartitions = 2\n[retry_policy]\ninitial_interval = "1s"\n')
    config = load_config(
        file=str(toml), env={"QUILL_PARTITIONS": "3", "QUILL_ABORT_TIMEOUT": "PT1M"}, overrides={"admin_port": 2000}
    )
    assert (config.ingress_port, config.admin_port, config.partitions) == (1000, 2000, 3)
    assert config.abort_timeout == 60
    assert config.retry_policy.initial_interval == 1.0
    assert load_config(env={}).ingress_port == 8080


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        load_config(env={"QUILL_PARTITIONS": "many"})
    with pytest.raises(ValueError):
        load_config(env={"QUILL_INACTIVITY_TIMEOUT": "forever"})


def test_retry_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.delay(20) == 60.0


def test_each_listener_address_wins_over_bind(tmp_path: Path) -> None:
    toml = tmp_path / "quill.toml"
    toml.write_text('admin_bind = "127.0.0.2"\n')
    config = load_config(
        file=str(toml), env={"QUILL_INGRESS_BIND": "0.0.0.0"}, overrides={"bind": "127.0.0.9", "dapr_port": 3500}
    )
    # A listener's own address, from any source, wins over --bind; --bind fills in the rest.
    assert (config.ingress_address, config.admin_address, config.dapr_address) == ("0.0.0.0", "127.0.0.2", "127.0.0.9")
    assert [listener.url for listener in config.listeners()] == [
        "http://0.0.0.0:8080/",
        "http://127.0.0.2:9070/",
        "http://127.0.0.9:3500/",
    ]
    defaults = load_config(env={})
    assert (defaults.ingress_address, defaults.admin_address) == ("127.0.0.1", "127.0.0.1")
    assert [listener.face for listener in defaults.listeners()] == ["ingress", "admin"]
    assert load_config(env={"QUILL_INGRESS_BIND": "::1"}).ingress_url == "http://[::1]:8080/"
