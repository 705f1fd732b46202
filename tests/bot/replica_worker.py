"""One bot replica in a process of its own, for the restart tests: ``bondbot serve``'s own serving
and shutdown (``bondbot.commands.serve.serve_bot``: signals, grace period, leases, recovery), with
the tests' ``HostRemediation`` (real commands over SSH to the test sshd) instead of the real
remediation, whose NetworkManager checkpoint cannot run against a replayed host.

    python replica_worker.py PORT

Everything else comes from the environment, as for ``bondbot serve --http``: SLACK_BOT_TOKEN,
SLACK_SIGNING_SECRET, SLACK_API_URL, BONDBOT_DATABASE_URL, BONDBOT_INVENTORY, BONDBOT_KNOWN_HOSTS,
BONDBOT_SLACK_AUTHZ, BONDBOT_LEASE_SECONDS, BONDBOT_SHUTDOWN_GRACE.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys


async def main(port: int) -> None:
    from bondbot.commands._remote import open_inventory, open_pool
    from bondbot.commands.serve import serve_bot
    from bondbot.settings import database_url
    from bot.app import BotDeps
    from bot.authz import load_policy
    from bot.recovery import LeaseSettings
    from bot.wiring import EngineTriage
    from incidents import IncidentStore
    from tests.bot.host_remediation import HostRemediation

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = IncidentStore.open(database_url())
    pool = open_pool(open_inventory(None))
    deps = BotDeps(
        store=store, triage=EngineTriage(pool, store), policy=load_policy(None, os.environ),
        remediation=HostRemediation(pool, store=store), leases=LeaseSettings.from_env(os.environ),
    )
    try:
        await serve_bot(deps, os.environ["SLACK_BOT_TOKEN"], None, os.environ["SLACK_SIGNING_SECRET"], http=True,
                        host="127.0.0.1", port=port, grace_s=float(os.environ.get("BONDBOT_SHUTDOWN_GRACE", "25")))
    finally:
        await pool.close()
        store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
