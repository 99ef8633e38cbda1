"""``python -m unitscope.cli``: the same as the ``unitscope`` command."""

from unitscope.cli.main import main

main()
