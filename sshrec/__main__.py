"""``python -m sshrec`` runs the command line (the recorder uses it to start the indexer)."""

from sshrec.cli import run

run()
