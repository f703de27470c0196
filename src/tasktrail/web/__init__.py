"""HTTP surfaces: JSON status, Server-Sent Events, the status page and the widget's script.

Every view asks :mod:`tasktrail.access` first; unknown and forbidden ids get the same 404.
"""
