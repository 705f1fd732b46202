"""Parsers for what the failover test's sampler writes on the host (pure; tested on recorded output).

The sampler (``failover.sampler_script`` in remediation.yaml, POSIX sh) leaves one text, read back
in sections (``=== name`` lines): ``header`` and ``end`` (the bond's sysfs state before and after),
``marks`` (kernel-log marks bracketed by realtime readings), ``ping.txt`` (iputils ``ping -D -O``),
``link.txt`` (``ip -d -ts monitor link`` with TZ=UTC) and ``kmsg`` (/dev/kmsg from the sampler's
start mark on). Each parser here reads one of them and keeps the clock it came with:

- realtime (seconds since the epoch, microseconds): ping's ``[1796126081.248603]`` stamps and
  ip's ``[2026-12-01T11:54:43.060916]`` stamps (when ip received the netlink event);
- the kernel log's clock (``local_clock()``, microseconds since boot, not NTP-adjusted): /dev/kmsg.

:func:`clock_alignment` turns the marks into the offset between the two, with its uncertainty.
"""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "LinkEvent",
    "KernelLine",
    "PortState",
    "Pings",
    "Alignment",
    "parse_sections",
    "parse_state_line",
    "parse_link_events",
    "parse_kmsg",
    "parse_pings",
    "clock_alignment",
]

_SECTION_RE = re.compile(r"^=== (\S+)$")
_LINK_RE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\] (?:\d+: )?([^:\s@]+)(?:@\S+)?: <([^>]*)>(.*)$")
_KMSG_RE = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;(.*)$")
_PING_REPLY_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)(?:.*? time=([\d.]+) ms)?")
_PING_NOANSWER_RE = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")
_PING_SENT_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")
_MARK_RE = re.compile(r"^mark (\d+) ([01]) (\S+) (\S+)$")
_REALTIME_RE = re.compile(r"^\d{9,11}\.\d{6,9}$")


def parse_sections(text: str) -> dict[str, str]:
    """The sampler's collected output -> {section name: text}."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _SECTION_RE.match(line)
        if m:
            current = sections.setdefault(m.group(1), [])
            continue
        if current is not None:
            current.append(line)
    return {k: "\n".join(v) + ("\n" if v else "") for k, v in sections.items()}


@dataclass(frozen=True)
class PortState:
    oper: str
    mii: str


def parse_state_line(text: str) -> tuple[dict[str, str], dict[str, PortState]]:
    """``ready|end active=eno1 primary=eno1 miimon=100 arp_interval=0 port=eno1:up:up ...``."""
    values: dict[str, str] = {}
    ports: dict[str, PortState] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("ready", "end"):
            continue
        values["kind"] = parts[0]
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key == "port":
                name, _, rest = value.partition(":")
                oper, _, mii = rest.partition(":")
                ports[name] = PortState(oper, mii)
            else:
                values[key] = value
    return values, ports


@dataclass(frozen=True)
class LinkEvent:
    """One ``ip -d -ts monitor link`` message (realtime seconds, when ip received it)."""

    t: float
    ifname: str
    flags: frozenset[str]
    operstate: str | None
    event: str | None  # "BONDING FAILOVER", "NOTIFY PEERS", ...
    active_slave: str | None  # on the bond's messages
    slave_state: str | None  # ACTIVE / BACKUP on a port's messages
    mii_status: str | None  # UP / DOWN on a port's messages

    @property
    def carrier(self) -> bool:
        return "LOWER_UP" in self.flags and "NO-CARRIER" not in self.flags


def _utc(stamp: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in stamp else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC).timestamp()


def parse_link_events(text: str) -> list[LinkEvent]:
    """``TZ=UTC ip -d -ts monitor link`` -> events. Format (a message; details indented)::

        [2026-12-01T11:54:43.103705] 3: eno1: <NO-CARRIER,BROADCAST,MULTICAST,SLAVE,UP> mtu 1500 ... state DOWN ...
            link/ether fa:48:b8:bd:2e:f6 brd ff:ff:ff:ff:ff:ff permaddr 52:54:00:20:00:01 ...
            bond_slave state BACKUP mii_status DOWN link_failure_count 1 ...
        [2026-12-01T11:54:43.104063] 5: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> ... event BONDING FAILOVER
            bond mode active-backup active_slave eno2 miimon 100 ...

    The stamp is ip's local time; the sampler sets TZ=UTC, so it is read as UTC.
    """
    events: list[LinkEvent] = []
    head: re.Match[str] | None = None
    details: list[str] = []

    def flush() -> None:
        if head is None:
            return
        rest = head.group(4) + " " + " ".join(details)
        first = head.group(4)
        oper = re.search(r"\bstate (\S+)", first)
        event = re.search(r"\bevent (.+?)\s*$", first)
        active = re.search(r"\bactive_slave (\S+)", rest)
        slave = re.search(r"\bbond_slave state (\S+) mii_status (\S+)", rest)
        try:
            t = _utc(head.group(1))
        except ValueError:
            return
        events.append(LinkEvent(
            t=t, ifname=head.group(2), flags=frozenset(head.group(3).split(",")),
            operstate=oper.group(1) if oper else None, event=event.group(1) if event else None,
            active_slave=active.group(1) if active else None,
            slave_state=slave.group(1) if slave else None, mii_status=slave.group(2) if slave else None))

    for line in text.splitlines():
        m = _LINK_RE.match(line)
        if m:
            flush()
            head, details = m, []
        elif line[:1].isspace() and head is not None:
            details.append(line.strip())
        else:
            flush()
            head, details = None, []
    flush()
    return events


@dataclass(frozen=True)
class KernelLine:
    """One kernel log record (the kernel's clock: seconds since boot, microseconds)."""

    t: float
    seq: int
    text: str


def parse_kmsg(text: str) -> list[KernelLine]:
    """/dev/kmsg records: ``prio,seq,usec,flags;message`` (continuation lines start with a space)."""
    out: list[KernelLine] = []
    for line in text.splitlines():
        m = _KMSG_RE.match(line)
        if m:
            out.append(KernelLine(int(m.group(3)) / 1e6, int(m.group(2)), m.group(4)))
    return out


@dataclass
class Pings:
    """iputils ``ping -D -O`` output: when each echo was answered, and what was never answered."""

    send_times: dict[int, float] = field(default_factory=dict)  # seq -> reply stamp minus RTT
    reply_times: dict[int, float] = field(default_factory=dict)
    no_answer: dict[int, float] = field(default_factory=dict)  # seq -> when ping said so
    transmitted: int | None = None
    received: int | None = None

    def spacing(self) -> float | None:
        """The median time between consecutive echoes, from the answered ones (s)."""
        seqs = sorted(self.send_times)
        steps = [(self.send_times[b] - self.send_times[a]) / (b - a) for a, b in itertools.pairwise(seqs)]
        return statistics.median(steps) if steps else None


def parse_pings(text: str) -> Pings:
    """``ping -D -O -n`` lines::

        [1796126081.239000] 64 bytes from 10.20.0.1: icmp_seq=17 ttl=255 time=0.4 ms
        [1796126081.248603] no answer yet for icmp_seq=18
        595 packets transmitted, 592 received, 0.504202% packet loss, time 7997ms

    The send time of an echo is its reply's stamp minus the round-trip time (same clock).
    """
    pings = Pings()
    for line in text.splitlines():
        m = _PING_REPLY_RE.match(line)
        if m:
            seq, t = int(m.group(2)), float(m.group(1))
            rtt = float(m.group(3)) / 1000 if m.group(3) else 0.0
            pings.reply_times.setdefault(seq, t)
            pings.send_times.setdefault(seq, t - rtt)
            continue
        m = _PING_NOANSWER_RE.match(line)
        if m:
            pings.no_answer.setdefault(int(m.group(2)), float(m.group(1)))
            continue
        m = _PING_SENT_RE.search(line)
        if m:
            pings.transmitted, pings.received = int(m.group(1)), int(m.group(2))
    return pings


@dataclass(frozen=True)
class Alignment:
    """realtime = kernel clock + offset (at the kernel time ``t``), to within ``uncertainty`` s."""

    start_t: float
    start_offset: float
    end_t: float | None
    end_offset: float | None
    uncertainty: float
    marks_used: int

    def to_realtime(self, t: float) -> float:
        if self.end_t is None or self.end_offset is None or self.end_t <= self.start_t:
            return t + self.start_offset
        slope = (self.end_offset - self.start_offset) / (self.end_t - self.start_t)
        return t + self.start_offset + (t - self.start_t) * slope

    @property
    def drift(self) -> float | None:
        """How much the offset moved between the start and the end marks (s)."""
        return None if self.end_offset is None else self.end_offset - self.start_offset


def clock_alignment(marks_text: str, kernel: list[KernelLine], tag: str | None = None) -> tuple[Alignment | None, str]:
    """The offset between the kernel log's clock and realtime, from the sampler's marks.

    For each mark the sampler created a file ``a``, wrote the mark into /dev/kmsg and created a
    file ``b``, with shell builtins (no fork in between); the kernel stamped the mark with its own
    clock at ``k``. A file's mtime is the realtime clock read coarsely (at most one tick, 1/HZ,
    behind), so ``mtime(a) - k <= offset <= mtime(b) + tick - k``. The marks before the cut (1-3)
    and after it (4-6) each give the intersection of their intervals (or, if they do not
    intersect, the narrowest one); between the two the offset is interpolated. The tick is
    1/CONFIG_HZ from the marks' ``hz`` line, 10 ms (HZ=100, the coarsest) when unknown.
    Returns (alignment or None, why not).
    """
    stamps: dict[int, float] = {}
    for line in kernel:
        m = re.match(r"bondbot-failover (\S+) mark (\d+)$", line.text)
        if m and (tag is None or m.group(1) == tag):
            stamps.setdefault(int(m.group(2)), line.t)
    tick = 0.01
    brackets: dict[int, tuple[float, float, float]] = {}  # mark -> (k, lo, hi)
    bad_date = False
    for mark_line in marks_text.splitlines():
        hz = re.match(r"^hz (\d+)$", mark_line.strip())
        if hz and 10 <= int(hz.group(1)) <= 10000:
            tick = 1 / int(hz.group(1))
        m = _MARK_RE.match(mark_line.strip())
        if not m:
            continue
        n, ok, a, b = int(m.group(1)), m.group(2) == "1", m.group(3), m.group(4)
        if not (_REALTIME_RE.match(a) and _REALTIME_RE.match(b)):
            bad_date = True
            continue
        if ok and n in stamps:
            k = stamps[n]
            brackets[n] = (k, float(a) - k, float(b) + tick - k)
    if not brackets:
        if bad_date:
            return None, "date -r FILE +%s.%N does not print nanoseconds on this host: the kernel log cannot be aligned"
        return None, "no mark reached the kernel log (/dev/kmsg not writable or not read)"

    def group(ns: range) -> tuple[float, float, float] | None:
        found = [brackets[n] for n in ns if n in brackets]
        if not found:
            return None
        lo, hi = max(f[1] for f in found), min(f[2] for f in found)
        k = statistics.fmean(f[0] for f in found)
        if lo <= hi:
            return k, (lo + hi) / 2, (hi - lo) / 2
        narrow = min(found, key=lambda f: f[2] - f[1])
        return narrow[0], (narrow[1] + narrow[2]) / 2, (narrow[2] - narrow[1]) / 2

    start, end = group(range(1, 4)), group(range(4, 7))
    if start is None:
        start, end = end, None
    assert start is not None
    unc = max(start[2], end[2] if end else 0.0)
    return Alignment(start[0], start[1], end[0] if end else None, end[1] if end else None, unc,
                     len(brackets)), ""
