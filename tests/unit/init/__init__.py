"""Unit tests of gateway.init."""
