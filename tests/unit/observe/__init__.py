"""Unit tests of gateway.observe."""
