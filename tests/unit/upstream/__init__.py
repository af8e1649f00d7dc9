"""Unit tests of gateway.upstream."""
