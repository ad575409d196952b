"""Test and benchmark support that ships with the package, never picked by users."""
