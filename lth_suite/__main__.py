"""``python -m lth_suite`` runs the CLI."""

from .cli import main

main()
