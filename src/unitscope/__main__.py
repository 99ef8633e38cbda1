"""``python -m unitscope`` (and ``torchrun -m unitscope``): the same as the ``unitscope`` command."""

from unitscope.cli.main import main

main()
