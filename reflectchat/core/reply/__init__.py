"""The reply: streaming section parser, reply stream, text sanitizing, Markdown blocks, footers."""
