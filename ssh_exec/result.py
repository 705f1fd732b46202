"""What one remote command did: the record every step keeps, shown to operators and logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CommandResult", "ExecLimits"]

# What ``sudo -n`` prints when it may not run the command without a password or a tty.
_SUDO_REFUSED = re.compile(
    r"^sudo: (a password is required|a terminal is required|.*is not in the sudoers file"
    r"|.*is not allowed to (execute|run sudo)|sorry, you must have a tty)",
    re.M,
)


@dataclass(frozen=True)
class ExecLimits:
    """Time and size budgets. ``host_timeout`` bounds everything done on one host in one run."""

    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    host_timeout: float = 60.0
    output_cap: int = 1024 * 1024  # bytes per stream; the rest is cut and ``truncated`` set
    idle_timeout: float = 60.0  # an unused connection is kept this long for follow-ups
    keepalive_interval: float = 15.0


@dataclass(frozen=True)
class CommandResult:
    """One command's outcome. ``exit_status`` is None when it never finished (timeout, cut off)."""

    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float
    truncated: bool = False
    timed_out: bool = False
    sudo: bool = False
    #: The host refused the SSH session ("open failed", past its MaxSessions): nothing ran.
    open_refused: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.truncated and not self.timed_out

    @property
    def privilege_denied(self) -> bool:
        """``sudo -n`` refused to run the command (no NOPASSWD rule, requiretty, not a sudoer)."""
        return self.sudo and self.exit_status not in (0, None) and bool(_SUDO_REFUSED.search(self.stderr))

    @property
    def failure_reason(self) -> str | None:
        """Why the command did not succeed, in words for the operator; None when it did."""
        if self.timed_out:
            return f"timed out after {self.duration:.1f} s"
        if self.truncated:
            return "output larger than the cap; cut off (the command was stopped)"
        if self.privilege_denied:
            return f"not privileged: sudo -n refused: {self.stderr.strip().splitlines()[0]}"
        if self.exit_status is None:
            return "ended without an exit status: " + (self.stderr.strip().splitlines() or ["no error output"])[-1]
        if self.exit_status != 0:
            first = self.stderr.strip().splitlines()[0] if self.stderr.strip() else "no error output"
            return f"exit status {self.exit_status}: {first}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_status": self.exit_status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration": round(self.duration, 4),
            "truncated": self.truncated,
            "timed_out": self.timed_out,
        }
