"""Deleting a conversation with everything kept for it, for `history rm` and the chat app."""

from __future__ import annotations

from reflectchat.core.chat.store import Store
from reflectchat.core.engine.kv_store import KVStore


def delete_conversation(store: Store, conversation_id: int, backend: object = None) -> None:
    """Its messages (ConversationNotFound if there is no such conversation), then its saved KV
    cache. A local engine still writing that cache in the background (the reply just ended)
    finishes first, so the file cannot come back after it was deleted."""
    store.delete_conversation(conversation_id)
    wait_for_saves = getattr(backend, "wait_for_saves", None)
    if wait_for_saves is not None:
        wait_for_saves()
    KVStore(cap=0).forget(conversation_id)
