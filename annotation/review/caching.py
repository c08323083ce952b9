"""What the review page reads on every answer but rarely changes, kept out of the database's way.

The review flow answers dozens of requests a second; the queue's settings and each annotator's key map change a
few times a day. The key map lives in the shared cache (every web process sees a change at once, because the
change itself clears it); the queue settings live a few seconds in each process. A cache that is down costs a
database read, never a failed answer.
"""

KEYMAP_TTL_SECONDS = 600


def keymap_cache_key(user_id: int, kind: str) -> str:
    return f"review:keymap:{user_id}:{kind}"


def queue_settings_changed(**kwargs) -> None:
    """Signal receiver: a ReviewQueue row was saved or deleted."""
    from annotation.review.leases import review_queue_settings_forget

    review_queue_settings_forget()
