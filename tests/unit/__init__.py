"""Unit tests, one folder per package of gateway/ (and project/ for the repository's files: docs, deploy, pins)."""
