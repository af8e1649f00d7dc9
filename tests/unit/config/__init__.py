"""Unit tests of gateway.config."""
