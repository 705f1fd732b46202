"""OpenSSH client config files read as ``ssh`` reads them: asyncssh's ``SSHClientConfig``, fixed up.

Why asyncssh's reader and not ``ssh -G``: on the test corpus (``tests/fixtures/ssh_configs/``)
both give the same hosts, addresses, ports, users, keys and jumps once three asyncssh differences
are corrected here (below); asyncssh runs in-process (no ``ssh`` binary needed where bondbot runs,
no process per host) and, unlike ``ssh -G``, lets bondbot say *where* each value came from
(``file:line``) and which options it saw but does not apply. ``ssh -G`` is the oracle in the tests.

What this module changes in asyncssh's reader (each one a difference from ``ssh -G`` that the
corpus showed):

- a ``# comment`` after a value ends the line, as in OpenSSH 9 (asyncssh: "Extra data at end");
- ``%`` tokens in ``IdentityFile`` are expanded once, after every file is read, as ssh does
  (asyncssh expanded at the end of each included file, before a later ``User`` was known:
  ``~/.ssh/cache_%r`` became ``cache_root`` where ssh uses ``cache_everyone``);
- the files an ``Include`` glob matches are read in sorted order, as ssh's glob(3) does (asyncssh:
  the directory's order, so which file's value won depended on the filesystem).

Also: relative ``Include`` paths and ``~``/``%d`` use the home directory from the password
database, as ssh does (not ``$HOME``); Includes nest at most 16 deep (OpenSSH's limit); each file
is tokenized once per version and each ``Host`` pattern compiled once, since an inventory resolves
every alias against the same files.

Which names are hosts (the allowlist): every literal ``Host`` alias; and any name matching a
``Host`` pattern with wildcards other than one made only of ``*``/``?`` (``Host *`` allows no
name by itself). Negated patterns never allow a name.
"""

from __future__ import annotations

import functools
import getpass
import glob
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SshConfigResult", "read_ssh_config", "resolve", "parse_jump_spec", "DEFAULT_IDENTITY_FILES"]

#: What ``ssh`` tries when no IdentityFile applies (OpenSSH 9.x order, as ``ssh -G`` prints them).
DEFAULT_IDENTITY_FILES = (
    "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa",
)

#: Options that change where, as whom or how securely bondbot would connect, and that it does
#: not apply: seeing one for a host gives a warning naming it (the host is still read).
_NOT_APPLIED = {
    "proxycommand": "ProxyCommand is not run by bondbot (use ProxyJump); this host is skipped",
    "hostkeyalias": "HostKeyAlias is not applied: bondbot looks host keys up by address and port",
    "canonicalizehostname": "CanonicalizeHostname is not applied: the address is used as written",
    "certificatefile": "CertificateFile is not applied: certificates are not offered",
    "identitiesonly": "IdentitiesOnly is not applied: bondbot offers the agent's keys too",
    "identityagent": "IdentityAgent is not applied: bondbot uses SSH_AUTH_SOCK",
    "forwardagent": "ForwardAgent is not applied: bondbot never forwards the agent",
    "stricthostkeychecking": "StrictHostKeyChecking is not applied: bondbot always checks strictly",
    "userknownhostsfile": "UserKnownHostsFile is not applied: bondbot uses its own known_hosts",
    "globalknownhostsfile": "GlobalKnownHostsFile is not applied: bondbot uses its own known_hosts",
    "addressfamily": "AddressFamily is not applied",
    "bindaddress": "BindAddress is not applied",
    "bindinterface": "BindInterface is not applied",
    "pkcs11provider": "PKCS11Provider is not applied",
    "securitykeyprovider": "SecurityKeyProvider is not applied",
    "remotecommand": "RemoteCommand is not applied",
    "localcommand": "LocalCommand is not applied",
}
#: Options whose value is the whole rest of the line (a command).
_WHOLE_LINE = {"proxycommand", "remotecommand", "localcommand", "knownhostscommand"}
_MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH


def home_dir() -> str:
    """The home directory as ssh finds it (the password database, not $HOME), for ``~`` and ``%d``."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def expand_tilde(path: str) -> str:
    """``~/x`` -> ``<home>/x`` with ssh's idea of home; ``~user/x`` as the shell would."""
    if path == "~" or path.startswith("~/"):
        return home_dir() + path[1:]
    return os.path.expanduser(path)


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` at the start of a word, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line


_TOKEN_CACHE: dict[tuple[Path, int, int], list[tuple[int, str | None, Any]]] = {}


def _tokenize(path: Path) -> list[tuple[int, str | None, Any]] | str:
    """``path``'s lines as (line number, option lowercased, args), or (line, None, error); read once
    per file version (an inventory resolves every alias against the same files)."""
    try:
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
        if key in _TOKEN_CACHE:
            return _TOKEN_CACHE[key]
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    out: list[tuple[int, str | None, Any]] = []
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        first = re.match(r"([A-Za-z][A-Za-z0-9]*)\s*(=\s*|\s+|$)", line)
        loption = first.group(1).lower() if first else ""
        if loption in _WHOLE_LINE:
            out.append((line_no, loption, [line[first.end():].strip()] if first else []))
            continue
        try:
            split = shlex.split(_strip_comment(line))
        except ValueError as exc:
            out.append((line_no, None, f"{exc}: {line!r}"))
            continue
        args: list[str] = []
        for i, arg in enumerate(split):
            if i == 0:
                opt, _, val = arg.partition("=")
                loption = opt.lower()
                if val:
                    args.append(val)
            elif i == 1 and not args and arg.startswith("="):
                if len(arg) > 1:
                    args.append(arg[1:])
            else:
                args.append(arg)
        out.append((line_no, loption, args))
    if len(_TOKEN_CACHE) > 256:
        _TOKEN_CACHE.clear()
    _TOKEN_CACHE[key] = out
    return out


@functools.lru_cache(maxsize=1)
def _config_class() -> type:
    """asyncssh's SSHClientConfig with bondbot's fixes (imported lazily: asyncssh costs ~90 ms)."""
    from asyncssh.config import SSHClientConfig
    from asyncssh.pattern import WildcardPatternList

    patterns = functools.lru_cache(maxsize=4096)(WildcardPatternList)

    def match_host(self: Any, option: str, args: list[str]) -> None:
        # asyncssh's Host handler, with the pattern list compiled once per pattern, not per alias
        self._matching = patterns(",".join(args)).matches(self._orig_host)
        args.clear()

    class _Config(SSHClientConfig):
        _handlers = dict(SSHClientConfig._handlers, host=("Host", match_host))

        def __init__(self, host: str, user: Any, port: Any, collect: bool = False, final: bool = False) -> None:
            super().__init__(None, False, False, final, getpass.getuser(), user, host, port)  # type: ignore[arg-type]
            self.origins: dict[str, list[str]] = {}
            self.seen: list[tuple[str, str, str]] = []  # (option lower, value, where) in matching blocks
            self.host_patterns: list[tuple[list[str], str]] = []  # every Host line: patterns, where
            self.errors: list[tuple[str, str]] = []  # (where, message)
            self.files: list[Path] = []
            self._collect = collect
            self._depth = 0
            self._default_path = Path(home_dir()) / ".ssh"  # relative Includes: ~/.ssh, as ssh finds ~

        def _include(self, option: str, args: list[str]) -> None:
            matching = self._matching
            if self._depth >= _MAX_INCLUDE_DEPTH:
                self.errors.append((self._where(), "Include nested too deeply; not followed"))
                args.clear()
                return
            path, line_no = self._path, self._line_no
            for pattern in args:
                full = expand_tilde(pattern)
                if not os.path.isabs(full):
                    full = str(self._default_path / full)
                # sorted, as OpenSSH's glob(3): asyncssh took the directory's order, and the first
                # value wins, so the order of included files decides
                for found in sorted(glob.glob(full)):
                    if os.path.isfile(found):
                        self.parse(Path(found))
            args.clear()
            self._path, self._line_no = path, line_no
            self._matching = matching  # OpenSSH restores the including block's state

        def _where(self) -> str:
            return f"{self._path}:{self._line_no}"

        def parse(self, path: Path) -> None:  # noqa: C901 - asyncssh's loop, with the fixes above
            self._depth += 1
            self._path, self._line_no, self._matching = path, 0, True
            if path not in self.files:
                self.files.append(path)
            tokens = _tokenize(path)
            if isinstance(tokens, str):
                self.errors.append((str(path), tokens))
                self._depth -= 1
                return
            for line_no, loption, args_or_error in tokens:
                self._line_no = line_no
                if loption is None:
                    self.errors.append((self._where(), str(args_or_error)))
                    continue
                args = list(args_or_error)
                if loption == "host" and self._collect:
                    self.host_patterns.append(([a for p in args for a in p.split(",")], self._where()))
                if loption == "include" and self._collect:
                    self._matching = True  # collecting Host lines: follow every Include
                if not self._matching and loption not in self._conditionals:
                    continue
                if loption not in ("host", "match", "include"):
                    self.seen.append((loption, " ".join(args), self._where()))
                try:
                    option, handler = self._handlers[loption]
                except KeyError:
                    continue
                if not args:
                    self.errors.append((self._where(), f"{option} without a value"))
                    continue
                before = self._options.get(option)
                before_len = len(before) if isinstance(before, list) else None
                try:
                    handler(self, option, args)
                except Exception as exc:  # asyncssh's ConfigParseError and friends
                    self.errors.append((self._where(), str(exc).split(": ", 1)[-1]))
                    continue
                after = self._options.get(option)
                if isinstance(after, list):
                    added = len(after) - (before_len or 0)
                    self.origins.setdefault(option, []).extend([self._where()] * max(added, 0))
                elif option in self._options and option not in self.origins:
                    self.origins[option] = [self._where()]
                if args:
                    self.errors.append((self._where(), f"extra data at end: {' '.join(args)}"))
            self._depth -= 1
            if self._depth == 0:
                self._expand_at_end()

        def _expand_at_end(self) -> None:
            self._set_tokens()
            self._tokens["d"] = home_dir()
            self._tokens["%"] = "%"
            for option in ("IdentityFile", "CertificateFile"):
                values = self._options.get(option)
                if isinstance(values, list):
                    out = []
                    for v in values:
                        try:
                            out.append(self._expand_val(v))
                        except Exception as exc:
                            self.errors.append((self.origins.get(option, ["?"])[0], f"{option} {v}: {exc}"))
                            out.append(v)
                    self._options[option] = out

    # asyncssh dispatches through this table (functions, not methods): point Include at ours
    _Config._handlers["include"] = ("Include", _Config._include)
    return _Config


@dataclass
class Resolved:
    """One name as ssh would connect to it: the values and where each came from."""

    name: str
    address: str
    port: int
    user: str
    keys: list[str]
    keys_default: bool
    proxy_jump: str | None
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (where, setting, message)
    skip: bool = False


@dataclass
class SshConfigResult:
    """Aliases, wildcard patterns and the files read, from one top-level config file."""

    path: Path
    aliases: list[tuple[str, str]]  # (alias, where its Host line is)
    patterns: list[tuple[str, str]]  # (wildcard pattern[,!negated...], where)
    errors: list[tuple[str, str]]
    files: list[Path]


def _load(path: Path, host: str, user: Any = (), port: Any = (), collect: bool = False) -> Any:
    cls = _config_class()
    config = cls(host, user, port, collect=collect)
    config.parse(path)
    if config.has_match_final():
        again = cls(host, user, port, final=True)
        again.parse(path)
        again.errors = config.errors + [e for e in again.errors if e not in config.errors]
        return again
    return config


def read_ssh_config(path: Path) -> SshConfigResult:
    """The names ``path`` makes hosts of (see the module docstring), and its parse errors."""
    config = _load(path, "\0no-host\0", collect=True)
    aliases: list[tuple[str, str]] = []
    patterns: list[tuple[str, str]] = []
    for pats, where in config.host_patterns:
        negated = [p for p in pats if p.startswith("!")]
        for p in pats:
            if not p or p.startswith("!"):
                continue
            if set(p) & set("*?"):
                if set(p) - set("*?") and p not in {q.split(",")[0] for q, _ in patterns}:
                    patterns.append((",".join([p] + negated), where))
            elif p not in {a for a, _ in aliases}:
                aliases.append((p, where))
    return SshConfigResult(path, aliases, patterns, list(config.errors), list(config.files))


def parse_jump_spec(spec: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` -> (user, host, port), as ssh's ``-J`` / ProxyJump take it."""
    s = spec.strip()
    if s.startswith("ssh://"):
        s = s[len("ssh://"):].rstrip("/")
    user, at, rest = s.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", rest)
        if not m:
            raise ValueError(f"cannot read jump host {spec!r}")
        host, port = m.group(1), int(m.group(2)) if m.group(2) else None
    elif rest.count(":") == 1:
        host, p = rest.split(":")
        if not p.isdigit():
            raise ValueError(f"cannot read jump host {spec!r}: port {p!r} is not a number")
        port = int(p)
    if not host:
        raise ValueError(f"cannot read jump host {spec!r}")
    return (user if at else None), host, port


def resolve(path: Path, name: str, *, user: str | None = None, port: int | None = None) -> Resolved:
    """``name`` as ssh would connect to it with ``-F path`` (and ``-l user -p port`` when given)."""
    config = _load(path, name, user if user is not None else (), port if port is not None else ())
    opts = config._options
    origins = {k: v[0] for k, v in config.origins.items() if v}
    out_origins: dict[str, str] = {}
    warnings: list[tuple[str, str, str]] = []
    address = str(opts.get("Hostname") or name)
    if "Hostname" in origins:
        out_origins["address"] = origins["Hostname"]
    port_v = opts.get("Port")
    if port is not None:
        out_origins["port"] = "jump spec (user@host:port)"
    elif "Port" in origins:
        out_origins["port"] = origins["Port"]
    user_v = opts.get("User")
    if user is not None:
        out_origins["user"] = "jump spec (user@host:port)"
    elif "User" in origins:
        out_origins["user"] = origins["User"]
    keys = [str(k) for k in (opts.get("IdentityFile") or [])]
    if keys:
        out_origins["keys"] = ", ".join(config.origins.get("IdentityFile", []))
    jump = opts.get("ProxyJump")
    if jump and "ProxyJump" in origins:
        out_origins["jump"] = origins["ProxyJump"]
    skip = False
    for loption, value, where in config.seen:
        reason = _NOT_APPLIED.get(loption)
        if reason is None:
            continue
        if loption == "proxycommand":
            if jump or value.lower() == "none":
                continue  # a ProxyJump applies: it is followed (and ProxyCommand not used)
            skip = True
        harmless = {"stricthostkeychecking": {"yes", "true"}, "forwardagent": {"no", "false"},
                    "identitiesonly": {"no", "false"}}
        if value.lower() in harmless.get(loption, set()):
            continue  # what bondbot does anyway
        warnings.append((where, _display_option(loption), f"{_display_option(loption)} {value}: {reason}"))
    for where, message in config.errors:
        warnings.append((where, "", message))
    return Resolved(
        name=name,
        address=address,
        port=int(port_v) if port_v else 22,
        user=str(user_v) if user_v else getpass.getuser(),
        keys=[expand_tilde(k) for k in keys],
        keys_default=not keys,
        proxy_jump=str(jump) if jump else None,
        origins=out_origins,
        warnings=warnings,
        skip=skip,
    )


def _display_option(loption: str) -> str:
    names = {
        "proxycommand": "ProxyCommand", "hostkeyalias": "HostKeyAlias", "canonicalizehostname": "CanonicalizeHostname",
        "certificatefile": "CertificateFile", "identitiesonly": "IdentitiesOnly", "identityagent": "IdentityAgent",
        "forwardagent": "ForwardAgent", "stricthostkeychecking": "StrictHostKeyChecking",
        "userknownhostsfile": "UserKnownHostsFile", "globalknownhostsfile": "GlobalKnownHostsFile",
        "addressfamily": "AddressFamily", "bindaddress": "BindAddress", "bindinterface": "BindInterface",
        "pkcs11provider": "PKCS11Provider", "securitykeyprovider": "SecurityKeyProvider",
        "remotecommand": "RemoteCommand", "localcommand": "LocalCommand",
    }
    return names.get(loption, loption)

