"""`kubectl heady` command lines: durations, intensities, kubectl's flags on either side."""

from __future__ import annotations

from pathlib import Path

import pytest

from heady_operator.cli.args import UsageError, parse, parse_duration, parse_intensity
from heady_operator.cli.main import main


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400), ("300", 300), ("1s", 1), ("24h", 86400)],
)
def test_durations_in_kubectl_style(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "out of range"),
        ("25h", "out of range"),
        ("5 minutes", "is not a duration"),
        ("m5", "is not a duration"),
        ("-5m", "is not a duration"),
        ("", "is not a duration"),
        ("5d", "is not a duration"),
    ],
)
def test_bad_durations_are_refused_with_the_flag_named(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        parse_duration(text)
    assert "--for" in str(err.value)


@pytest.mark.parametrize("text", ["0", "0.8", "1", "1.0"])
def test_intensities(text: str) -> None:
    assert parse_intensity(text) == float(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("1.5", "out of range"), ("-0.1", "out of range"), ("nan", "out of range"), ("hi", "not a number")],
)
def test_bad_intensities(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_intensity(text)


def test_focus_defaults_and_flags() -> None:
    opts = parse(["focus", "web"])
    assert (opts.services, opts.ttl_seconds, opts.intensity, opts.user, opts.source) == (
        ("web",),
        300,
        1.0,
        None,
        "kubectl",
    )
    opts = parse(["focus", "web", "api", "--for", "2m", "--intensity", "0.8", "--user", "ana", "-n", "shop"])
    assert (opts.services, opts.ttl_seconds, opts.intensity, opts.user, opts.namespace) == (
        ("web", "api"),
        120,
        0.8,
        "ana",
        "shop",
    )


def test_kubectl_flags_before_or_after_the_subcommand() -> None:
    before = parse(["-n", "shop", "--context", "kind", "--kubeconfig", "/k", "top", "-o", "wide"])
    after = parse(["top", "-n", "shop", "--context", "kind", "--kubeconfig", "/k", "-o", "wide"])
    for opts in (before, after):
        assert (opts.namespace, opts.context, opts.kubeconfig, opts.output) == ("shop", "kind", "/k", "wide")
    assert parse(["-A", "arenas"]).all_namespaces
    assert parse(["arenas", "--all-namespaces"]).all_namespaces
    assert not parse(["arenas"]).all_namespaces


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["top", "-o", "name"], "-o name is not supported by top"),
        (["explain", "web", "-o", "wide"], "-o wide is not supported by explain"),
        (["focus", "web", "-A"], "focus works on one namespace"),
        (["focus", "web", "web"], "named once"),
        (["focus"], "required"),
        (["explain"], "required"),
        ([], "required"),
        (["scale", "web"], "invalid choice"),
        (["top", "-o", "table"], "invalid choice"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(argv)


def test_metrics_options() -> None:
    opts = parse(["top", "--metrics-url", "http://127.0.0.1:8080/metrics", "--operator-namespace", "ops"])
    assert (opts.metrics_url, opts.operator_namespace) == ("http://127.0.0.1:8080/metrics", "ops")


def test_main_reports_errors_kubectl_style(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["focus", "web", "--for", "0s"]) == 1
    assert capsys.readouterr().err == "error: --for '0s' is out of range: a signal lasts from 1s to 24h\n"
    missing = tmp_path / "nope"
    assert main(["top", "--kubeconfig", str(missing)]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot load the kubeconfig ({missing}):")
