"""Fixtures, fake servers and helpers shared by the tests."""
