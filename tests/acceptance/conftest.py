"""The newcomer test opens pages with the session's one Chromium (tests/chromium.py)."""
