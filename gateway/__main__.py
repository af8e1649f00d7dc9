"""``python -m gateway`` is the ``gateway`` command."""

from gateway.cli.commands import main

raise SystemExit(main())
