"""The pure-Python core: no textual, no rich. Front ends (cli/, tui/) sit on top of it."""
