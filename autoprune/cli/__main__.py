"""``python -m autoprune.cli``: the command line."""

from . import main

main()
