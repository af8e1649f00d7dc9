"""Unit tests of gateway.demo."""
