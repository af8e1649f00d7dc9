"""Unit tests of gateway.oauth."""
