"""``bondbot demo``: the main job, the seed's bonding incident end to end.

Interim version: diagnoses the seed incident's outputs that the project ships, exactly as
``bondbot diagnose`` would. It grows into the full flow (lab VM, Slack stand-in, approvals).
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

SEED_FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "written" / "seed-active-backup-miimon0"


def demo() -> None:
    """Run the seed's incident through bondbot."""
    from bondbot.commands.diagnose import diagnose_command

    d = SEED_FIXTURE
    diagnose_command(
        proc=d / "proc_net_bonding_bond0.txt",
        ip_json=d / "ip_-d_-j_link_show_bond0.json",
        ip_link=[f"eno1={d / 'ip_link_show_eno1.txt'}", f"eno2={d / 'ip_link_show_eno2.txt'}"],
        ethtool=[f"eno1={d / 'ethtool_eno1.txt'}", f"eno2={d / 'ethtool_eno2.txt'}"],
        nmcli=d / "nmcli_-t_con_show_bond0.txt",
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
