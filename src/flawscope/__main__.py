"""``python -m flawscope`` runs the command-line interface."""

from flawscope.cli import main

main()
