"""Sessions read from the shared cache, written through to the database, and never failing with the cache.

Django's ``cached_db`` store spares the session query of every request (the review page sends one per answer).
Two changes make it fit this site:
- a cache that is down costs a database read, never a failed request (Django's own store raises on load's
  write-back and on delete);
- an entry lives in the cache at most ``CACHE_SECONDS``, so a session deleted while the cache could not be
  reached (a sign-out during a Redis outage) is gone everywhere within that time, not when it would expire.
"""

from django.contrib.sessions.backends import cached_db

from config.cache_calls import cache_call

CACHE_SECONDS = 300


class SessionStore(cached_db.SessionStore):
    def load(self) -> dict:
        data = cache_call(self._cache.get, self.cache_key)
        if data is not None:
            return data
        session = self._get_session_from_db()
        if not session:
            return {}
        data = self.decode(session.session_data)
        cache_call(self._cache.set, self.cache_key, data, self._cache_seconds(session.expire_date))
        return data

    def exists(self, session_key: str) -> bool:
        return super(cached_db.SessionStore, self).exists(session_key)  # the database is the truth

    def save(self, must_create: bool = False) -> None:
        super(cached_db.SessionStore, self).save(must_create)
        cache_call(self._cache.set, self.cache_key, self._session, self._cache_seconds())

    def delete(self, session_key: str | None = None) -> None:
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is not None:
            cache_call(self._cache.delete, self.cache_key_prefix + session_key)

    def _cache_seconds(self, expiry=None) -> int:
        return max(
            0, min(CACHE_SECONDS, self.get_expiry_age(expiry=expiry) if expiry else self.get_expiry_age())
        )
