"""Remote execution over SSH (asyncssh): connections, timeouts, host keys, inventory, fan-out.

Public API::

    inv = load_inventory(Path("hosts.ini"))     # the entry point says where (bondbot.settings)
    async with SshPool(inv, known_hosts=Path("known_hosts")) as pool:
        session = pool.session("web-01")        # allowlist checked here; budget = host_timeout
        results = await session.run_many(["cat /proc/net/bonding/bond0", "ip -d -j link show bond0"])

Connection problems raise a subclass of ``SshExecError`` whose message says what to do; command
problems (non-zero exit, timeout, output cut) come back as ``CommandResult`` fields.

This layer knows no settings: every file it reads (inventory, known_hosts, the ansible-inventory
cache) is a parameter, chosen by the entry point (``bondbot.settings``).
"""

from ssh_exec.errors import (
    AuthenticationFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyChanged,
    HostKeyError,
    HostKeyUnknown,
    HostNotAllowed,
    HostSkipped,
    InvalidValue,
    InventoryError,
    NameNotResolved,
    SshExecError,
)
from ssh_exec.fanout import Outcome, fan_out
from ssh_exec.inventory import Host, Inventory, InventoryWarning, validate_host_name
from ssh_exec.known_hosts import fingerprint, record_host_key, trusted_keys
from ssh_exec.pool import HostSession, SshPool
from ssh_exec.result import CommandResult, ExecLimits
from ssh_exec.sources import load_inventory

__all__ = [
    "AuthenticationFailed",
    "CommandResult",
    "ConnectError",
    "ConnectionRefused",
    "ConnectTimeout",
    "ExecLimits",
    "Host",
    "HostKeyChanged",
    "HostKeyError",
    "HostKeyUnknown",
    "HostNotAllowed",
    "HostSkipped",
    "HostSession",
    "Inventory",
    "InvalidValue",
    "InventoryError",
    "InventoryWarning",
    "NameNotResolved",
    "Outcome",
    "SshExecError",
    "SshPool",
    "validate_host_name",
    "fan_out",
    "fingerprint",
    "load_inventory",
    "record_host_key",
    "trusted_keys",
]
