"""The inventory corpus against the real tools: every file agrees, or bondbot warns about exactly
the fields it cannot follow.

- ``tests/fixtures/inventories/``: Ansible inventories, each compared host by host and field by
  field (hosts, address, port, user, keys, become, jump) with real ``ansible-inventory --list``
  (ansible-core, in the dev extras), templated addresses with what ``ansible -m debug`` renders;
  read by bondbot's built-in parser, and (a few) through ``ansible-inventory`` itself.
- ``tests/fixtures/ssh_configs/``: OpenSSH client configs, each host (and each ProxyJump hop)
  compared with real ``ssh -G``.

``ansible-inventory`` starts slowly (~1 s): the oracle runs happen once per session, in threads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ssh_exec import HostNotAllowed, HostSkipped, Inventory
from ssh_exec.ssh_config import DEFAULT_IDENTITY_FILES, expand_tilde
from tests.ssh.fixtures import load_inventory
from tests.ssh.oracles import (
    ansible_hosts,
    ansible_inventory_list,
    ansible_inventory_lists,
    ansible_inventory_path,
    ssh_binary,
    ssh_g,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INVENTORIES = FIXTURES / "inventories"
SSH_CONFIGS = FIXTURES / "ssh_configs"
INVENTORY_CASES: dict[str, dict[str, Any]] = yaml.safe_load((INVENTORIES / "cases.yaml").read_text())
SSH_CASES: dict[str, dict[str, Any]] = yaml.safe_load((SSH_CONFIGS / "cases.yaml").read_text())
ANSIBLE = ansible_inventory_path()
#: ansible-inventory runs the oracle; bondbot's own ansible-inventory path is checked on these
VIA_ANSIBLE_INVENTORY = ("dir-vars", "bastion-ini", "connection-kinds")

needs_ansible = pytest.mark.skipif(ANSIBLE is None, reason="ansible-core not installed (pip install -e '.[dev]')")
needs_ssh = pytest.mark.skipif(ssh_binary() is None, reason="openssh-client not installed")

def test_corpus_is_big_enough() -> None:
    assert len(INVENTORY_CASES) >= 10 and len(SSH_CASES) >= 8


# --- Ansible ----------------------------------------------------------------------------------------


def _rendered_hosts(inventory: Path) -> dict[str, str | None]:
    """What Ansible itself renders for ``ansible_host`` (None where the task fails)."""
    ansible = str(Path(ANSIBLE).parent / "ansible")  # type: ignore[arg-type]
    proc = subprocess.run([ansible, "all", "-i", str(inventory), "-o", "-m", "ansible.builtin.debug", "-a",
                           "msg={{ ansible_host | default(inventory_hostname) }}"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0"))
    out: dict[str, str | None] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(\S+) \| (SUCCESS|FAILED!) => (.*)$", line)
        if m:
            out[m.group(1)] = json.loads(m.group(3)).get("msg") if m.group(2) == "SUCCESS" else None
    return out


@pytest.fixture(scope="session")
def ansible_oracle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per case: (oracle hosts, rendered ansible_host or None); and bondbot through ansible-inventory."""
    if ANSIBLE is None:
        pytest.skip("ansible-core not installed")
    paths = {case: INVENTORIES / spec["path"] for case, spec in INVENTORY_CASES.items()}

    def via(case: str) -> tuple[str, Any]:
        return case, load_inventory(paths[case], check=False)

    saved = {k: os.environ.get(k) for k in ("BONDBOT_ANSIBLE_INVENTORY", "BONDBOT_DATA_DIR")}
    os.environ["BONDBOT_ANSIBLE_INVENTORY"] = ANSIBLE
    os.environ["BONDBOT_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))  # a fresh cache: ansible-inventory runs
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            lists = pool.submit(ansible_inventory_lists, list(paths.values()), ANSIBLE)
            rendered = {c: pool.submit(_rendered_hosts, paths[c]) for c, s in INVENTORY_CASES.items() if s.get("render")}
            through = dict(pool.map(via, VIA_ANSIBLE_INVENTORY))
            data = lists.result()
            oracle = {c: (ansible_hosts(data[str(paths[c])]), rendered[c].result() if c in rendered else None)
                      for c in INVENTORY_CASES}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"oracle": oracle, "through": through, "lists": {c: data[str(p)] for c, p in paths.items()}}


@needs_ansible
def test_batch_oracle_is_ansible_inventory(ansible_oracle: dict[str, Any]) -> None:
    """The one-start-up oracle prints what the ansible-inventory binary prints."""
    case = "dir-vars"
    assert ansible_oracle["lists"][case] == ansible_inventory_list(INVENTORIES / INVENTORY_CASES[case]["path"], ANSIBLE)


def _bondbot_fields(inv: Inventory, name: str) -> dict[str, Any]:
    h = inv.hosts[name]
    return {"address": h.address, "port": h.port, "user": h.user, "keys": [str(k) for k in h.keys],
            "become": h.sudo, "jump": h.proxy_jump}


def _check_against_ansible(case: str, inv: Inventory, oracle: dict[str, dict[str, Any]],
                           rendered: dict[str, str | None] | None) -> None:
    spec = INVENTORY_CASES[case]
    skipped: dict[str, str] = spec.get("skipped") or {}
    warns: dict[str, list[str]] = spec.get("warns") or {}
    assert set(inv.hosts) | set(skipped) == set(oracle), "hosts differ from ansible-inventory"
    assert set(inv.hosts).isdisjoint(skipped)
    warned: dict[str, set[str]] = {}
    for w in inv.warnings:
        assert w.host is not None and re.search(r":\d+", w.where), f"warning without host or file:line: {w}"
        warned.setdefault(w.host, set()).add(w.setting or "")
    assert warned == {h: set(s) for h, s in warns.items()} | {h: {s} for h, s in skipped.items()}, \
        "bondbot must warn about exactly these hosts and settings"
    for name in inv.hosts:
        expected = {k: v for k, v in oracle[name].items() if k != "connection"}
        if rendered is not None:
            expected["address"] = rendered[name]
        assert _bondbot_fields(inv, name) == expected, name
    for name, setting in skipped.items():
        assert name in inv.skipped and setting in inv.skipped[name]
        with pytest.raises(HostSkipped, match="skipped when reading the inventory"):
            inv.get(name)


@needs_ansible
@pytest.mark.parametrize("case", list(INVENTORY_CASES))
def test_ansible_corpus_builtin_parser(case: str, ansible_oracle: dict[str, Any]) -> None:
    hosts, rendered = ansible_oracle["oracle"][case]
    inv = load_inventory(INVENTORIES / INVENTORY_CASES[case]["path"], check=False, use_ansible_inventory=False)
    _check_against_ansible(case, inv, hosts, rendered)


@needs_ansible
@pytest.mark.parametrize("case", VIA_ANSIBLE_INVENTORY)
def test_ansible_corpus_through_ansible_inventory(case: str, ansible_oracle: dict[str, Any]) -> None:
    hosts, rendered = ansible_oracle["oracle"][case]
    inv = ansible_oracle["through"][case]
    _check_against_ansible(case, inv, hosts, rendered)
    # origins still name file:line, from the built-in parser, where both readers agree
    some = next(iter(inv.hosts))
    assert any(re.search(r":\d+", o) for o in inv.origins[some].values()), inv.origins[some]


# --- OpenSSH -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ssh config corpus with ``@DIR@`` made absolute (ssh reads relative Includes in ~/.ssh)."""
    root = tmp_path_factory.mktemp("ssh_configs")
    for case in SSH_CASES:
        dest = root / case
        shutil.copytree(SSH_CONFIGS / case, dest)
        for f in dest.rglob("*"):
            if f.is_file():
                f.write_text(f.read_text().replace("@DIR@", str(dest)))
    return root


def _jump_chain(value: str | None) -> list[tuple[str | None, str, int | None]]:
    """A ProxyJump value as (user, host, port) per hop; ssh -G writes ``[h]:p`` where we keep ``h:p``."""
    out = []
    for spec in (value or "").split(","):
        if not spec:
            continue
        m = re.fullmatch(r"(?:ssh://)?(?:([^@]+)@)?(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?", spec)
        assert m, spec
        out.append((m.group(1), m.group(2) or m.group(3), int(m.group(4)) if m.group(4) else None))
    return out


def _hops(inv: Inventory, jump: str | None) -> Iterator[Any]:
    while jump:
        hop = inv.jump_host(jump)
        yield hop
        jump = hop.jump


@needs_ssh
@pytest.mark.parametrize("case", list(SSH_CASES))
def test_ssh_config_corpus(case: str, ssh_corpus: Path) -> None:
    spec = SSH_CASES[case]
    config = ssh_corpus / case / "config"
    inv = load_inventory(config)
    assert list(inv.hosts) == spec["hosts"]
    skipped = spec.get("skipped") or {}
    warns = spec.get("warns") or {}
    warned: dict[str, set[str]] = {}
    for w in inv.warnings:
        assert re.search(r":\d+$", w.where), f"warning without file:line: {w}"
        warned.setdefault(w.host or "", set()).add(w.setting or "")
    assert warned == {h: set(s) for h, s in warns.items()} | {h: {s} for h, s in skipped.items()}
    defaults = [expand_tilde(k) for k in DEFAULT_IDENTITY_FILES]
    for name in spec["hosts"] + (spec.get("extra") or []):
        host = inv.get(name)
        real = ssh_g(config, name)
        keys = [str(k) for k in host.keys] or defaults
        assert (host.address, host.port, host.user, keys) == (real["address"], real["port"], real["user"],
                                                             real["keys"]), name
        assert _jump_chain(host.proxy_jump) == _jump_chain(real["jump"]), name
        # each hop is what ssh would dial for it (``ssh -J`` takes the hop's own config, -l/-p first)
        hops = list(_hops(inv, host.jump))[::-1]
        chain = _jump_chain(real["jump"])
        first_own = len(hops) - len(chain)  # hops of the first hop's own ProxyJump come first
        assert first_own >= 0
        for hop, (user, hname, port) in zip(hops[first_own:], chain, strict=True):
            r = ssh_g(config, hname, user=user, port=port)
            assert (hop.address, hop.port, hop.user) == (r["address"], r["port"], r["user"]), (name, hop.name)
    for name in spec.get("refused") or []:
        with pytest.raises(HostNotAllowed):
            inv.get(name)
    for name in skipped:
        assert real_proxycommand(config, name)
        with pytest.raises(HostSkipped, match="ProxyCommand"):
            inv.get(name)


def real_proxycommand(config: Path, name: str) -> bool:
    return ssh_g(config, name)["proxycommand"] is not None



@needs_ssh
def test_plain_asyncssh_reader_differs_from_ssh_where_bondbot_fixes_it(ssh_corpus: Path) -> None:
    """Why bondbot wraps asyncssh's reader: unwrapped, it disagrees with ``ssh -G`` on this corpus."""
    import getpass

    from asyncssh.config import SSHClientConfig

    def plain(config: Path, host: str) -> Any:
        return SSHClientConfig.load(None, [config], False, False, False, getpass.getuser(), (), host, ())

    with pytest.raises(Exception, match="Extra data at end"):  # a trailing '# comment'
        plain(ssh_corpus / "basic" / "config", "bastion")
    include = ssh_corpus / "include" / "config"
    assert plain(include, "cache-01").get("IdentityFile") == [f"~/.ssh/cache_{getpass.getuser()}"]
    assert ssh_g(include, "cache-01")["keys"][0] == expand_tilde("~/.ssh/cache_everyone")
    assert [str(k) for k in load_inventory(include).get("cache-01").keys][0] == expand_tilde("~/.ssh/cache_everyone")


@needs_ssh
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser")
def test_relative_include_resolves_in_home_ssh_as_ssh_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Include conf.d/*.conf`` (relative) is read from ~/.ssh, as OpenSSH does. ssh takes ~ from
    the password database, so the oracle runs as the tests' own user, in whose ~/.ssh the test
    writes a folder of its own (removed afterwards)."""
    import pwd
    import uuid

    from ssh_exec import ssh_config
    from tests.sshd import TEST_USER, ensure_test_user

    ensure_test_user()
    home = Path(pwd.getpwnam(TEST_USER).pw_dir)
    sub = f"bondbot-corpus-{uuid.uuid4().hex[:8]}"
    folder = home / ".ssh" / sub
    (folder / "conf.d").mkdir(parents=True, mode=0o755)
    (home / ".ssh").chmod(0o755)
    try:
        (folder / "conf.d" / "a.conf").write_text("Host rel-a\n    HostName 10.11.0.1\n    User rela\n")
        (folder / "conf.d" / "b.conf").write_text(f"Host rel-b\n    HostName 10.11.0.2\n    Include {sub}/common\n")
        (folder / "common").write_text("    Port 2299\n    User relb\n    IdentityFile ~/.ssh/relb_key\n")
        config = folder / "config"
        config.write_text(f"Include {sub}/conf.d/*.conf\nHost *\n    User fallback\n")
        for p in [folder, folder / "conf.d", *folder.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        monkeypatch.setattr(ssh_config, "home_dir", lambda: str(home))
        inv = load_inventory(config)
        assert list(inv.hosts) == ["rel-a", "rel-b"]
        for name in ("rel-a", "rel-b"):
            out = subprocess.run(["runuser", "-u", TEST_USER, "--", "ssh", "-G", "-F", str(config), name],
                                 capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
            assert out.returncode == 0, out.stderr
            real = {k: v for k, _, v in (ln.partition(" ") for ln in out.stdout.splitlines()) if k != "identityfile"}
            keys = [ln.split(" ", 1)[1].replace("~", str(home), 1) for ln in out.stdout.splitlines()
                    if ln.startswith("identityfile ")]
            h = inv.get(name)
            assert (h.address, str(h.port), h.user) == (real["hostname"], real["port"], real["user"]), name
            if h.keys:
                assert [str(k) for k in h.keys] == keys
        assert [str(k) for k in inv.get("rel-b").keys] == [f"{home}/.ssh/relb_key"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
