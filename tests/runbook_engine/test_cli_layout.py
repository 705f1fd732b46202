"""What the operator reads in the terminal: the commands outside the box, whole at 80 columns (each
line splits with shlex into exactly the command bondbot built), the safe path (``bondbot fix``)
before the runbook's down/up, and the same evidence layout in ``triage`` and ``diagnose``.

Over a real sshd replaying the lab's recorded outputs, with a profile name that needs quoting.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

from typer.testing import CliRunner

from bondbot.cli import app
from runbooks.engine import run_host_triage
from ssh_exec import SshPool
from tests.ssh.fixtures import SshTestHost
from tests.triage_replay import host_table, persona_bond

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diagnosis"))
from diag_helpers import SEED  # noqa: E402

BORDER = re.compile(r"[│╭╮╰╯─]")


def _cli(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": str(columns)})
    return result.stdout


def _after_box(out: str) -> list[str]:
    """The lines after the root cause box closes."""
    lines = out.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("╰"))
    return lines[end + 1:]


async def test_triage_prints_whole_commands_outside_the_box_at_80_columns(ssh_host: SshTestHost) -> None:
    profile = "Bond \"edge\" it's a long profile name"
    ssh_host.rewrite_inventory(bond=None)
    ssh_host.server.set_replay(host_table(persona_bond("incident", profile=profile)))
    async with SshPool(ssh_host.inventory(), known_hosts=ssh_host.known_hosts_path) as pool:
        ht = await run_host_triage(pool, "test-host")
    [result] = ht.results
    root = result.diagnosis.root_cause  # type: ignore[union-attr]
    fallback = root.facts["fix_commands"]
    assert len(fallback) == 2 and any(len(c) > 76 for c in fallback)  # longer than the box is wide

    out = await asyncio.to_thread(_cli, "triage", "test-host")
    for command in fallback:  # never inside the box
        assert not any(command[:30] in line and BORDER.search(line) for line in out.splitlines())
    after = _after_box(out)
    safe = after.index("  bondbot fix test-host --bond uplink0")
    assert after[safe - 1].startswith("Fix, the safe path (no down/up")
    fallback_at = next(i for i, line in enumerate(after) if line.startswith("Fallback, the runbook's commands"))
    assert safe < fallback_at, "the safe path comes first"
    printed = after[fallback_at + 1: fallback_at + 1 + len(fallback)]
    # each command one line, whole: the shell reads exactly the command bondbot built
    assert [shlex.split(line) for line in printed] == [shlex.split(c) for c in fallback]
    assert [line.strip() for line in printed] == fallback
    assert shlex.split(printed[0])[3] == profile
    assert "nmcli con down" in printed[1]  # the down/up only here, as the fallback
    assert not any(BORDER.search(line) for line in after[safe - 1: fallback_at + 1 + len(fallback)])
    # the box itself still fits 80 columns
    assert max(len(line) for line in out.splitlines() if BORDER.search(line[:1] or " ")) <= 80


def _evidence_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "Evidence:" in line)
    found = []
    for line in lines[start + 1:]:
        inner = line.strip("│ ").rstrip()
        if "  │ " not in line:
            break
        found.append(re.sub(r"\s+", " ", inner))
    return found


async def test_triage_and_diagnose_lay_out_evidence_the_same(ssh_host: SshTestHost, tmp_path: Path) -> None:
    ssh_host.rewrite_inventory(bond=None)
    ssh_host.server.set_replay(host_table(persona_bond("incident")))
    triage = await asyncio.to_thread(_cli, "triage", "test-host", columns=200)
    diagnose = _cli("diagnose", "--proc", str(SEED / "proc_net_bonding_bond0.txt"),
                    "--ip-json", str(SEED / "ip_-d_-j_link_show_bond0.json"),
                    "--nmcli", str(SEED / "nmcli_-t_con_show_bond0.txt"), columns=200)
    t, d = _evidence_lines(triage), _evidence_lines(diagnose)
    assert t and d
    pattern = re.compile(r"^\S.* │ \S")  # "source │ line", one per line in both
    assert all(pattern.match(x) for x in t + d), (t, d)
    assert "cat /proc/net/bonding/bond0 │ MII Polling Interval (ms): 0" in d
    assert any(x.startswith("cat /proc/net/bonding/uplink0 │ MII Polling Interval (ms): 0") for x in t)
    # both: safe path first, then the fallback, outside the box
    for out, fix in ((triage, "  bondbot fix test-host --bond uplink0"), (diagnose, "  bondbot fix HOST --bond bond0")):
        after = _after_box(out)
        assert after.index(fix) < next(i for i, line in enumerate(after) if line.startswith("Fallback"))
