"""`python -m stepstone.cli`, as `stepstone` (the package's own `python -m stepstone` too)."""

from . import main

main()
