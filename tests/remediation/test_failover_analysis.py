"""The failover test's measurement analysis, from sampler and ping output in the host's format.

``data/`` holds output recorded from the lab VM (the real sampler and iputils ping in the guest);
the small cases below are built in the same format to pin down edge cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbooks.bonding.failover import PASS_OUTAGE_MS, analyze

DATA = Path(__file__).parent / "data"


def sampler(*states: tuple[float, str, str, str, str, str]) -> str:
    """(t, active, eno1 operstate, eno2 operstate, eno1 mii, eno2 mii) -> the sampler's text."""
    lines = ["ready 999.000000 slaves=eno1,eno2 primary=eno1 miimon=100 arp_interval=0"]
    for t, active, o1, o2, m1, m2 in states:
        lines.append(f"s {t:.6f} {active} eno1:{o1}:{m1} eno2:{o2}:{m2}")
    lines.append("end 1010.000000 samples=2500 median_gap_ms=4.10 p99_gap_ms=8.00 max_gap_ms=12.50")
    return "\n".join(lines) + "\n"


def pings(times: list[tuple[int, float]], sent: int) -> str:
    lines = ["PING 10.20.0.1 (10.20.0.1) from 10.20.0.10 bond0: 56(84) bytes of data."]
    lines += [f"[{t:.6f}] 64 bytes from 10.20.0.1: icmp_seq={seq} ttl=255 time=0.4 ms" for seq, t in times]
    lines += ["", "--- 10.20.0.1 ping statistics ---",
              f"{sent} packets transmitted, {len(times)} received, {100 * (sent - len(times)) // sent}% packet loss"]
    return "\n".join(lines) + "\n"


def every_10ms(start_seq: int, start: float, end: float) -> list[tuple[int, float]]:
    out, seq, t = [], start_seq, start
    while t < end:
        out.append((seq, round(t, 6)))
        seq, t = seq + 1, t + 0.01
    return out


def test_healthy_failover_passes_with_detection_outage_and_primary_return() -> None:
    samples = sampler(
        (1000.0, "eno1", "up", "up", "up", "up"),
        (1002.000, "eno1", "down", "up", "up", "up"),  # carrier lost
        (1002.080, "eno1", "down", "up", "down", "up"),  # miimon noticed
        (1002.081, "eno2", "down", "up", "down", "up"),  # failed over
        (1005.000, "eno2", "up", "up", "down", "up"),  # link back
        (1005.090, "eno1", "up", "up", "up", "up"),  # primary back
    )
    replies = every_10ms(1, 1000.005, 1002.0) + every_10ms(212, 1002.115, 1008.0)
    report = analyze(samples, pings(replies, sent=800), host="h", bond="bond0", method="lab",
                     cut_slave="eno1", primary="eno1")
    assert report.passed, report.verdict
    assert report.failed_over and report.failed_over_to == "eno2"
    assert report.detection_ms == pytest.approx(81, abs=1)
    assert report.mii_down_ms == pytest.approx(80, abs=1)
    assert report.outage_ms == pytest.approx(110, abs=2)
    assert report.lost_pings == 11
    assert report.primary_returned and report.primary_return_ms == pytest.approx(90, abs=1)
    assert report.sampler_median_ms == 4.1
    assert "PASS" in report.render_text()


def test_no_monitor_no_failover_and_pings_lost_until_the_link_returns() -> None:
    samples = sampler(
        (1000.0, "eno1", "up", "up", "up", "up"),
        (1002.000, "eno1", "down", "up", "up", "up"),
        (1005.000, "eno1", "up", "up", "up", "up"),
    )
    replies = every_10ms(1, 1000.005, 1002.0) + every_10ms(501, 1005.02, 1007.0)
    report = analyze(samples, pings(replies, sent=700), host="h", bond="bond0", method="lab",
                     cut_slave="eno1", primary="eno1")
    assert not report.passed
    assert not report.failed_over and report.detection_ms is None
    assert report.outage_ms > 2900 and report.lost_pings == 300
    assert "no failover" in report.verdict and "outage" in report.verdict


def test_outage_just_over_the_limit_fails() -> None:
    samples = sampler((1000.0, "eno1", "up", "up", "up", "up"), (1002.0, "eno1", "down", "up", "up", "up"),
                      (1002.30, "eno2", "down", "up", "down", "up"), (1004.0, "eno2", "up", "up", "down", "up"),
                      (1004.1, "eno1", "up", "up", "up", "up"))
    replies = every_10ms(1, 1000.005, 1002.0) + every_10ms(240, 1002.320, 1006.0)
    report = analyze(samples, pings(replies, sent=600), host="h", bond="bond0", method="lab",
                     cut_slave="eno1", primary="eno1")
    assert report.outage_ms > PASS_OUTAGE_MS and not report.passed


def test_primary_not_returning_fails_the_test() -> None:
    samples = sampler((1000.0, "eno1", "up", "up", "up", "up"), (1002.0, "eno1", "down", "up", "up", "up"),
                      (1002.1, "eno2", "down", "up", "down", "up"), (1004.0, "eno2", "up", "up", "up", "up"))
    replies = every_10ms(1, 1000.005, 1002.0) + every_10ms(212, 1002.12, 1006.0)
    report = analyze(samples, pings(replies, sent=600), host="h", bond="bond0", method="lab",
                     cut_slave="eno1", primary="eno1")
    assert report.failed_over and report.primary_returned is False and not report.passed
    assert "primary eno1 did not become active again" in report.verdict


def test_cut_never_seen_is_reported_not_guessed() -> None:
    samples = sampler((1000.0, "eno1", "up", "up", "up", "up"))
    report = analyze(samples, pings(every_10ms(1, 1000, 1003), 300), host="h", bond="bond0", method="manual",
                     cut_slave="eno1", primary="eno1")
    assert not report.passed and not report.cut_seen and "never saw eno1 go down" in report.verdict


def test_host_method_carries_its_caveat() -> None:
    samples = sampler((1000.0, "eno1", "up", "up", "up", "up"), (1002.0, "eno1", "down", "up", "down", "up"),
                      (1002.001, "eno2", "down", "up", "down", "up"), (1004.0, "eno2", "up", "up", "up", "up"),
                      (1004.1, "eno1", "up", "up", "up", "up"))
    replies = every_10ms(1, 1000.005, 1002.0) + every_10ms(202, 1002.02, 1006.0)
    report = analyze(samples, pings(replies, sent=600), host="h", bond="bond0", method="host",
                     cut_slave="eno1", primary="eno1")
    assert report.passed and "does not prove that a dead switch port" in (report.caveat or "")


@pytest.mark.parametrize("case", sorted(p.name for p in DATA.iterdir() if p.is_dir()))
def test_recorded_lab_runs(case: str) -> None:
    """Runs recorded on the lab VM: each folder has samples.txt, ping.txt and expect.json."""
    folder = DATA / case
    expect = json.loads((folder / "expect.json").read_text())
    report = analyze((folder / "samples.txt").read_text(), (folder / "ping.txt").read_text(),
                     host="lab-host", bond="bond0", method="lab", cut_slave="eno1", primary="eno1")
    assert report.passed is expect["passed"]
    assert report.failed_over is expect["failed_over"]
    if expect["passed"]:
        assert report.outage_ms <= PASS_OUTAGE_MS and report.primary_returned
    else:
        assert report.lost_pings >= expect["min_lost_pings"]
