"""The Slack surface (slack-bolt): commands, Block Kit views, approvals, authorization."""
