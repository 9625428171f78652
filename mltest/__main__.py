"""``python -m mltest`` is the ``mltest`` command."""

from mltest.cli import main

raise SystemExit(main())
