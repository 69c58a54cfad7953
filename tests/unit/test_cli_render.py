"""Tables and colour as kubectl users expect them."""

from __future__ import annotations

import io

import pytest

from heady_operator.cli.render import Cell, dump, human_duration, paint, percent, table, wants_colour


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_aligns_on_plain_text_even_with_colour() -> None:
    rows = [[Cell("web", "bold"), Cell("Peak", "yellow"), "x"], ["checkout", "Baseline", "long message"]]
    plain = table(["name", "level", "waiting"], rows, colour=False)
    assert plain == (
        "NAME       LEVEL      WAITING\nweb        Peak       x\ncheckout   Baseline   long message\n"
    )
    coloured = table(["name", "level", "waiting"], rows, colour=True)
    assert "\x1b[1mweb\x1b[0m        \x1b[33mPeak\x1b[0m       x" in coloured
    stripped = coloured.replace("\x1b[1m", "").replace("\x1b[33m", "").replace("\x1b[0m", "")
    assert stripped == plain


def test_paint_combines_styles_and_leaves_empty_text_alone() -> None:
    assert paint("Peak", "yellow+bold", True) == "\x1b[33;1mPeak\x1b[0m"
    assert paint("Peak", "yellow", False) == "Peak"
    assert paint("", "red", True) == ""


@pytest.mark.parametrize(
    ("tty", "env", "want"),
    [
        (True, {"TERM": "xterm-256color"}, True),
        (False, {"TERM": "xterm-256color"}, False),
        (True, {"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
        (True, {"TERM": "dumb"}, False),
        (True, {"TERM": "xterm", "NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
    ],
)
def test_colour_only_on_a_terminal_without_no_color(tty: bool, env: dict[str, str], want: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert wants_colour(stream, env) is want


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (45, "45s"),
        (119, "119s"),
        (200, "3m20s"),
        (300, "5m"),
        (1500, "25m"),
        (18600, "5h10m"),
        (36000, "10h"),
        (3 * 86400, "3d"),
        (3 * 86400 + 7200, "3d2h"),
        (30 * 86400, "30d"),
    ],
)
def test_human_durations_like_kubectl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_percent_and_dump() -> None:
    assert percent(None) == "n/a"
    assert percent(0.1049) == "10%"
    assert dump({"a": [1]}, "json") == '{\n  "a": [\n    1\n  ]\n}\n'
    assert dump({"a": [1]}, "yaml") == "a:\n- 1\n"
