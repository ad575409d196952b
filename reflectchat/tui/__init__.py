"""The terminal chat app (Textual): `reflectchat` and `reflectchat chat`.

A thin layer over `reflectchat.core`: the same `ChatSession`/`ReplyStream` path as `ask`, with
generation in a worker thread and the section events drawn live. Nothing here is imported by
`--help`, `--version`, `ask` or `view`.
"""
