"""The ``gateway`` command and its subcommands (serve, check, keygen, linktest, console, health)."""
