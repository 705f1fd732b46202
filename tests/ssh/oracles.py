"""The real tools as oracles: ``ansible-inventory --list`` and ``ssh -G``, reduced to bondbot's fields.

Each oracle returns, per host, the fields bondbot compares (address, port, user, keys, become,
jump). The reduction is only reading the tools' output (which variable Ansible's ssh connection
uses, which line ``ssh -G`` prints); it never re-implements their parsing.
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ansible_inventory_path", "ansible_inventory_list", "ansible_inventory_lists", "ansible_hosts", "ssh_g", "ssh_binary", "expand_ssh_tokens"]

_VENV_BIN = Path(sys.executable).parent


def ansible_inventory_path() -> str | None:
    """``ansible-inventory`` from the dev extras (in the virtualenv), else on PATH."""
    candidate = _VENV_BIN / "ansible-inventory"
    return str(candidate) if candidate.exists() else shutil.which("ansible-inventory")


def ssh_binary() -> str | None:
    return shutil.which("ssh")


def _ansible_bool(value: Any) -> bool:
    # ansible.module_utils.parsing.convert_bool.boolean, the truthy set
    return str(value).strip().lower() in {"y", "yes", "on", "1", "true", "t", "1.0"} if not isinstance(value, bool) else value


def _last(hv: dict[str, Any], names: tuple[str, ...]) -> Any:
    value = None
    for n in names:  # Ansible's connection options: the last variable defined wins
        if hv.get(n) is not None:
            value = hv[n]
    return value


def _jump_in_args(hv: dict[str, Any]) -> str | None:
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args"):
        args = shlex.split(str(hv.get(var) or ""))
        for i, a in enumerate(args):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if a == "-J":
                return nxt
            if a.startswith("-J") and len(a) > 2:
                return a[2:]
            opt = nxt if a == "-o" else a[2:] if a.startswith("-o") else ""
            m = re.match(r"(?i)proxyjump\s*[= ]\s*(.*)", opt)
            if m and m.group(1).lower() != "none":
                return m.group(1)
    return None


_BATCH = r"""
import json, os, sys, tempfile
import ansible.cli.inventory  # imported once; each inventory is read by a freshly forked child
tmp, children = tempfile.mkdtemp(), []
for i, path in enumerate(sys.argv[1:]):
    out = os.path.join(tmp, f"{i}.json")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            cli = ansible.cli.inventory.InventoryCLI(["ansible-inventory", "-i", path, "--list", "--output", out])
            cli.parse()
            cli.run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    children.append((pid, path, out))
result = {}
for pid, path, out in children:
    _, status = os.waitpid(pid, 0)
    result[path] = json.load(open(out)) if os.WEXITSTATUS(status) == 0 else None
print(json.dumps(result))
"""


def ansible_inventory_lists(inventories: list[Path], binary: str) -> dict[str, Any]:
    """``ansible-inventory -i X --list`` for each inventory, in one go.

    ansible-inventory spends ~0.5 s of CPU starting up (imports); this runs its own CLI class
    (what the ``ansible-inventory`` entry point runs, same arguments, output written by it) in one
    child per inventory forked after the imports, so the corpus costs one start-up. A test
    compares it with the binary itself (``test_batch_oracle_is_ansible_inventory``).
    """
    python = Path(binary).parent / "python"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([str(python) if python.exists() else sys.executable, "-c", _BATCH, *map(str, inventories)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ansible_inventory_list(inventory: Path, binary: str) -> dict[str, Any]:
    """The ``ansible-inventory`` binary itself: ``-i inventory --list``."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([binary, "-i", str(inventory), "--list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ansible_hosts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``ansible-inventory --list`` output, each host reduced to bondbot's fields."""
    out: dict[str, dict[str, Any]] = {}
    for name, hv in (data.get("_meta", {}).get("hostvars") or {}).items():
        key = _last(hv, ("ansible_private_key_file", "ansible_ssh_private_key_file"))
        out[name] = {
            "address": str(_last(hv, ("ansible_host", "ansible_ssh_host")) or name),
            "port": int(_last(hv, ("ansible_port", "ansible_ssh_port")) or 22),
            "user": str(_last(hv, ("ansible_user", "ansible_ssh_user")) or getpass.getuser()),
            "keys": [os.path.expanduser(str(key))] if key else [],
            "become": _ansible_bool(hv.get("ansible_become", False)),
            "jump": _jump_in_args(hv),
            "connection": hv.get("ansible_connection", "ssh"),
        }
    groups = {g: b for g, b in data.items() if g != "_meta"}
    for body in groups.values():  # hosts listed in groups only (no vars at all)
        for h in body.get("hosts") or []:
            out.setdefault(h, {"address": h, "port": 22, "user": getpass.getuser(), "keys": [], "become": False,
                               "jump": None, "connection": "ssh"})
    return out


def expand_ssh_tokens(path: str, *, host: str, port: int, user: str) -> str:
    """What ssh does to an IdentityFile that ``ssh -G`` prints unexpanded (OpenSSH 9.2): ~ and %-tokens."""
    pw = pwd.getpwuid(os.getuid())
    tokens = {"d": pw.pw_dir, "u": pw.pw_name, "r": user, "h": host, "p": str(port), "%": "%"}
    path = re.sub(r"%(.)", lambda m: tokens.get(m.group(1), m.group(0)), path)
    if path == "~" or path.startswith("~/"):
        path = pw.pw_dir + path[1:]
    return path


def ssh_g(config: Path, name: str, *, user: str | None = None, port: int | None = None) -> dict[str, Any]:
    """``ssh -G -F config [-l user] [-p port] name``, reduced to bondbot's fields."""
    cmd = [ssh_binary() or "ssh", "-G", "-F", str(config)]
    if user:
        cmd += ["-l", user]
    if port:
        cmd += ["-p", str(port)]
    proc = subprocess.run(cmd + ["--", name], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    opts: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        k, _, v = line.partition(" ")
        opts.setdefault(k, []).append(v)
    host, prt, usr = opts["hostname"][0], int(opts["port"][0]), opts["user"][0]
    return {
        "address": host,
        "port": prt,
        "user": usr,
        "keys": [expand_ssh_tokens(k, host=host, port=prt, user=usr) for k in opts.get("identityfile", [])],
        "jump": opts.get("proxyjump", [None])[0],
        "proxycommand": opts.get("proxycommand", [None])[0],
    }
