"""Conversations: sessions, the history store, exports, prompts and the one setup path."""
