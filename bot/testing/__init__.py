"""Slack on loopback, for tests, the benchmarks and ``bondbot demo``: not the bot's public API.

Like ``starlette.testclient``, this lives in the installed package (the demo drives it, so it cannot
live in ``tests/``) but apart from what the bot exports; ``bot/__init__`` does not re-export it and
nothing in the bot's own modules imports it.

* ``bot.testing.standin.SlackStandin``: the Web API, response URLs, file uploads and Socket Mode,
  checked against Slack's own limits, recording every call.
* ``bot.testing.harness.start_bot(slack, deps, mode=...)``: the real Bolt app against the stand-in.
* ``bot.testing.transcript.render_text/render_html/message_lines``: the channel as a person sees it.

Import the submodule you need; this package imports nothing so that ``import bot`` stays cheap.
"""
