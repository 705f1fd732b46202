"""``bondbot lab``: the lab VM, a real bonded Debian host in QEMU, for tests and the demo.

The lab package is imported inside each command, so ``bondbot triage`` does not pay for it.
Errors are one line on stderr: exit status 2 for bad input (nothing changed), 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lab.vm import LabVM

__all__ = ["register"]

lab_app = typer.Typer(
    name="lab",
    help="A real bonded Linux host in a QEMU VM: build, boot, cut links, switch scenarios.",
    no_args_is_help=True,
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _errors() -> Iterator[None]:
    from lab.errors import InvalidArgument, LabError

    try:
        yield
    except InvalidArgument as exc:
        _say(f"error: {exc}")
        raise typer.Exit(2) from None
    except LabError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(1) from None


PersonaOption = Annotated[
    str, typer.Option("--persona", "-p", help="Which lab host: bookworm (the seed, lab-host) or trixie (edge-07).")
]


def _vm(persona: str = "bookworm") -> LabVM:
    from bondbot.settings import lab_accel, lab_dir, lab_qemu
    from lab.network import get_persona
    from lab.vm import LabVM

    return LabVM(lab_dir=lab_dir(), persona=get_persona(persona), qemu=lab_qemu(), accel=lab_accel())


def lab_first_boot() -> Any:
    """``lab.firstboot.first_boot`` with the settings' QEMU and accelerator, for ``build_image``."""
    import functools

    from bondbot.settings import lab_accel, lab_qemu
    from lab.firstboot import first_boot

    return functools.partial(first_boot, qemu=lab_qemu(), accel=lab_accel())


@lab_app.command("build")
def build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if cached.")] = False,
    persona: Annotated[
        list[str] | None, typer.Option("--persona", "-p", help="Only this persona (repeatable; default: all).")
    ] = None,
) -> None:
    """Build every persona's lab image (each cached; rebuilt only when its recipe changes)."""
    with _errors():
        from bondbot.settings import lab_dir, lab_mirror
        from lab.image import build_image
        from lab.network import PERSONAS, get_persona
        from lab.recipe import recipe_for

        chosen = [get_persona(p) for p in persona] if persona else list(PERSONAS.values())
        for one in chosen:
            image, built = build_image(base=lab_dir(), force=force, recipe=recipe_for(one), progress=_say,
                                       first_boot=lab_first_boot(), mirror=lab_mirror())
            if not built:
                _say(f"lab image {image.recipe_hash} ({one.id}) is up to date ({image.directory})")


@lab_app.command("up")
def up(
    accel: Annotated[str | None, typer.Option(
        help="auto (KVM if it works, else TCG), kvm or tcg (default: BONDBOT_LAB_ACCEL, else auto).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for SSH.")] = 300.0,
    persona: PersonaOption = "bookworm",
) -> None:
    """Boot the VM in the background, wait for SSH, write its inventory entry (lab-host, edge-07)."""
    with _errors():
        from bondbot.settings import inventory_path, known_hosts_path

        vm = _vm(persona)
        state = vm.up(accel=accel, timeout=timeout, inventory_path=inventory_path(),
                      known_hosts_path=known_hosts_path(), progress=_say)
        _say(
            f"lab VM ({state.persona}) up in {state.boot_seconds:.0f} s ({state.accel}), scenario {state.scenario}; "
            f"inventory host '{vm.inventory_name}' -> root@127.0.0.1:{state.ssh_port} ({inventory_path()})"
        )


@lab_app.command("down")
def down(persona: PersonaOption = "bookworm") -> None:
    """Stop the VM and remove its runtime files (safe to run at any time)."""
    with _errors():
        _say("lab VM stopped" if _vm(persona).down() else "lab VM was not running")


@lab_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
    persona: PersonaOption = "bookworm",
) -> None:
    """Whether the VM runs, on which ports, in which scenario, with which links down."""
    with _errors():
        info = _vm(persona).status()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
        elif not info["running"]:
            typer.echo("lab VM: not running")
        else:
            links = " ".join(f"{k}={v}" for k, v in info["links"].items())
            typer.echo(
                f"lab VM: running (persona {info['persona']}, host {info['host']}, pid {info['pid']}, "
                f"{info['accel']}, up {info['uptime_s']} s)\n"
                f"ssh: {info['ssh']}\nscenario: {info['scenario']}\nlinks: {links}"
            )
        if not info["running"] and not as_json:
            raise typer.Exit(3)


@lab_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(ctx: typer.Context, persona: PersonaOption = "bookworm") -> None:
    """Open a root shell in the VM, or run the given command (host key pinned)."""
    with _errors():
        import shlex

        vm = _vm(persona)
        vm.state()
        command = shlex.join(ctx.args) if ctx.args else None
        argv = vm.ssh_argv(command)
        if command is None:
            argv.insert(1, "-t")
        sys.stdout.flush()
        os.execvp(argv[0], argv)


@lab_app.command("link")
def link(
    interface: Annotated[str, typer.Argument(help="The guest's NIC name: eno1, eno2 or mgmt0 (bookworm); "
                                                  "the names its udev gave (trixie, see `lab status`).")],
    state: Annotated[str, typer.Argument(help="down or up.")],
    persona: PersonaOption = "bookworm",
) -> None:
    """Shut or re-enable the switch port of an interface (QMP set_link: the guest sees NO-CARRIER)."""
    with _errors():
        from lab.errors import InvalidArgument

        if state not in ("up", "down"):
            raise InvalidArgument(f"invalid link state {state!r}: use up or down")
        from lab.errors import ImageMissing

        vm = _vm(persona)
        try:
            known = vm.persona
        except ImageMissing:  # udev-named NICs: only a built image knows the names
            known = vm.base_persona
        if known.resolved:
            known.nic(interface)  # a bad name is exit 2, whether or not the VM runs
        vm.link(interface, state == "up")
        _say(f"{interface}: switch port {'enabled' if state == 'up' else 'shut'}")


@lab_app.command("scenario")
def scenario(
    name: Annotated[str, typer.Argument(help="bookworm: incident, healthy, arp, lacp-no-partner, single-port, "
                                             "rr-no-monitor, ssh-via-bond; trixie: incident, healthy, "
                                             "two-bonds, no-bond, spaced-profile, quoted-profile, "
                                             "ifupdown.")] = "incident",
    persona: PersonaOption = "bookworm",
) -> None:
    """Put the host into a named bond state (all links up first)."""
    with _errors():
        from lab.network import get_persona
        from lab.scenarios import get_scenario

        get_scenario(name, get_persona(persona))
        vm = _vm(persona)
        state = vm.scenario(name, progress=_say)
        _say(f"scenario {state.scenario} applied; SSH on port {vm.ssh_port(state)}")


def _default_fixture_dir() -> Path | None:
    import lab

    candidate = Path(lab.__file__).resolve().parent.parent / "tests" / "fixtures" / "lab"
    return candidate if candidate.parent.is_dir() else None


@lab_app.command("record")
def record(
    out: Annotated[Path | None, typer.Option(help="Fixture directory (default: tests/fixtures/lab).")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Record only these (repeatable).")] = None,
    persona: PersonaOption = "bookworm",
) -> None:
    """Run the triage on every scenario and save the real outputs as test fixtures.

    Uses the running VM, or boots one for the recording and stops it afterwards.
    """
    with _errors():
        from lab.errors import InvalidArgument
        from lab.record import record_all

        target = out or _default_fixture_dir()
        if target is None:
            raise InvalidArgument("no tests/fixtures directory next to the lab package: give --out DIR")
        vm = _vm(persona)
        booted_here = False
        if not vm.is_running():
            from bondbot.settings import lab_accel, lab_dir, lab_qemu
            from lab.paths import instance_dir

            vm = type(vm)(instance_dir(f"record-{persona}", lab_dir()), lab_dir=lab_dir(), persona=persona,
                          qemu=lab_qemu(), accel=lab_accel())
            vm.down()
            vm.up(progress=_say)
            booted_here = True
        try:
            names = record_all(vm, target, names=only or None, progress=_say)
        finally:
            if booted_here:
                vm.down()
        _say(f"recorded {len(names)} fixtures in {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")

