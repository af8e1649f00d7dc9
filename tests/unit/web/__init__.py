"""Unit tests of gateway.web."""
