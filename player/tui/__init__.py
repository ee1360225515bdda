"""``sshrec tui``: the Textual app that finds a session in the index and replays it.

Only ``sshrec tui`` imports this package (the record path never imports Textual).
"""
