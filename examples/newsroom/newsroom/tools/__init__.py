"""Tools the editorial team runs as commands (from Slack, `jobdeck exec` or the API)."""
