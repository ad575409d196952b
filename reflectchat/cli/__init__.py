"""Command-line front end (argparse + Rich rendering)."""
