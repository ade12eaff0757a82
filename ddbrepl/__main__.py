"""``python -m ddbrepl``: the same as the ``ddbrepl`` console script."""

from ddbrepl.cli import main

main()
