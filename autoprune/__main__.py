"""``python -m autoprune``: the command line."""

from .cli import main

main()
