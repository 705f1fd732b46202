"""Property tests: every parser, fed random or mutated input, returns a result or raises ParseError.

Any other exception (IndexError, KeyError, AttributeError...) is a bug: on a real host the text is
whatever the command printed, and the diagnosis must say so rather than crash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diag_helpers import SEED, WRITTEN, proc_only
from runbooks.bonding.diagnosis import diagnose
from runbooks.bonding.parsers import (
    ParseError,
    parse_ethtool,
    parse_ip_details,
    parse_ip_link,
    parse_nmcli,
    parse_proc_bonding,
)

SEEDS: dict[str, tuple[Callable, list[Path]]] = {
    "proc": (parse_proc_bonding, [SEED / "proc_net_bonding_bond0.txt",
                                  WRITTEN / "8023ad-port-going-back" / "proc_net_bonding_bond0.txt",
                                  WRITTEN / "arp-monitor-no-targets" / "proc_net_bonding_bond1.txt"]),
    "ip_details": (parse_ip_details, [SEED / "ip_-d_-j_link_show_bond0.json"]),
    "ip_link": (parse_ip_link, [SEED / "ip_link_show_eno1.txt", SEED / "ip_link_show_eno2.txt"]),
    "ethtool": (parse_ethtool, [SEED / "ethtool_eno1.txt", SEED / "ethtool_eno2.txt"]),
    "nmcli": (parse_nmcli, [SEED / "nmcli_-t_con_show_bond0.txt"]),
}

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Pieces that appear in real outputs, so mutations reach deep into the parsers.
TOKENS = ["Slave Interface: x", "802.3ad info", "Active Aggregator Info:", "\tAggregator ID: 1",
          "details actor lacp pdu:", "    port state: 300", "MII Status: going back",
          "Speed: -1 Mbps", "Aggregator ID: N/A", "bond bond0 has no active aggregator",
          "ARP IP target/s (n.n.n.n form): 1.2.3", "Bonding Mode: adaptive load balancing",
          "1: x: <UP> mtu 9", "    bond mode 802.3ad miimon x", "    bond_slave state",
          "Settings for x:", "\tSpeed: fast", "bond.options:=", "connection.id:", ":", "",
          '{"linkinfo":{"info_kind":"bond","info_data":[]}}', "[]", "\t", "    "]


@st.composite
def mutated(draw, paths: list[Path]) -> str:
    lines = draw(st.sampled_from(paths)).read_text().splitlines()
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "dup", "swap", "insert", "edit", "truncate"]))
        if not lines:
            lines = [draw(st.text(max_size=40))]
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(TOKENS) | st.text(max_size=40)))
        elif op == "edit":
            line = lines[i]
            k = draw(st.integers(0, len(line)))
            lines[i] = line[:k] + draw(st.text(max_size=8)) + line[k + draw(st.integers(0, 8)):]
        else:
            lines = lines[:i]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


def _parse_or_error(parse: Callable, text: str) -> object:
    try:
        return parse(text)
    except ParseError as exc:
        assert exc.line_number >= 0 and isinstance(exc.line, str) and str(exc)
        return exc


@pytest.mark.parametrize("kind", sorted(SEEDS))
@FAST
@given(data=st.data())
def test_mutated_input_parses_or_raises_parse_error(kind: str, data) -> None:
    parse, paths = SEEDS[kind]
    _parse_or_error(parse, data.draw(mutated(paths)))


@pytest.mark.parametrize("kind", sorted(SEEDS))
@FAST
@given(text=st.text(max_size=300) | st.lists(st.sampled_from(TOKENS)).map("\n".join))
def test_random_input_parses_or_raises_parse_error(kind: str, text: str) -> None:
    _parse_or_error(SEEDS[kind][0], text)


@FAST
@given(data=st.data())
def test_diagnosis_of_mutated_proc_never_crashes(data) -> None:
    text = data.draw(mutated(SEEDS["proc"][1]))
    diagnosis = diagnose(proc_only(text))
    for finding in diagnosis.findings:
        assert finding.summary and "\n" not in finding.summary
    if diagnosis.root_cause is not None:
        assert diagnosis.root_cause in diagnosis.findings
