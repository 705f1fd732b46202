"""Build the container image for real and run its health check inside it (slow: opt-in).

``BONDBOT_IMAGE_BUILD=1 pytest tests/deploy/test_image_build.py``: deploy/build-image.sh
--local-base (podman/buildah from Debian, chroot isolation, a debootstrapped Debian 12 base,
about 30 s once the base is cached, a few minutes the first time), then, inside the image and as
its user, ``bondbot serve`` in Socket Mode against the Slack stand-in on loopback, and the
image's own HEALTHCHECK command against it. ``podman run`` is refused on some machines (this
one: "setrlimit RLIMIT_NOFILE: Operation not permitted"), so the container runs through
``buildah run --isolation chroot``, which shares the host's network.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bot.testing.standin import SlackStandin

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/bondbot:test"

pytestmark = pytest.mark.skipif(
    os.environ.get("BONDBOT_IMAGE_BUILD") != "1",
    reason="builds the image (30 s to minutes): set BONDBOT_IMAGE_BUILD=1 to run",
)


@pytest.fixture(scope="module")
def image() -> str:
    t0 = time.monotonic()
    built = subprocess.run([str(REPO / "deploy/build-image.sh"), "--local-base", "--tag", TAG],
                           capture_output=True, text=True, timeout=1800)
    print(built.stderr[-1500:], f"\nbuild-image.sh: {time.monotonic() - t0:.1f} s")
    if built.returncode == 77:
        pytest.skip(built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr[-3000:]
    return TAG


def _inspect(image: str, fmt: str) -> str:
    tool = "podman" if shutil.which("podman") else "buildah"
    args = [tool, "image", "inspect", "--format", fmt, image] if tool == "podman" else \
        [tool, "inspect", "--type", "image", "--format", fmt, image]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def test_image_metadata(image: str) -> None:
    assert _inspect(image, "{{.Config.User}}") == "10001:10001"
    health = json.loads(_inspect(image, "{{json .Config.Healthcheck}}"))
    assert health["Test"] == ["CMD", "/opt/bondbot/venv/bin/python", "-m", "bot.health"]
    assert "/var/lib/bondbot" in json.loads(_inspect(image, "{{json .Config.Volumes}}"))


async def test_healthcheck_inside_the_image(image: str) -> None:
    if not shutil.which("buildah"):
        pytest.skip("buildah is needed to run a command in the image here")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctr = subprocess.run(["buildah", "from", "--quiet", image], capture_output=True, text=True, check=True).stdout.strip()

    def run(*cmd: str, env: dict[str, str]) -> list[str]:
        flags = [f"--env={k}={v}" for k, v in env.items()]
        return ["buildah", "run", "--isolation", "chroot", "--user", "10001:10001", *flags, ctr, "--", *cmd]

    try:
        async with SlackStandin() as slack:
            env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
                   "SLACK_API_URL": slack.api_url, "BONDBOT_SLACK_AUTHZ": "",
                   "BONDBOT_HEALTH_PORT": str(port), "BONDBOT_HEALTH_HOST": "127.0.0.1"}
            serve = subprocess.Popen(run("bondbot", "serve", env=env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                probe = None
                for _ in range(150):
                    probe = await asyncio.to_thread(subprocess.run, run("/opt/bondbot/venv/bin/python", "-m", "bot.health",
                                                                        env=env), capture_output=True, text=True)
                    if probe.returncode == 0 or serve.poll() is not None:
                        break
                    await asyncio.sleep(0.2)
                assert probe is not None and probe.returncode == 0, (probe and probe.stderr,
                                                                      serve.poll(), serve.stdout and serve.stdout.read1(4000))
                assert slack.socket_connections_opened >= 1
            finally:
                serve.terminate()
                try:
                    serve.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    serve.kill()
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
