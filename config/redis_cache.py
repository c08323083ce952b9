"""Django's Redis cache, with one client object per connection pool instead of one per call.

Django builds a new ``redis.Redis`` for every cache operation, and each one fills a table of about 500
response callbacks: on the review page, which reads the cache three times per answer (session, user, keys),
that was a few percent of an answer's CPU. A ``redis.Redis`` is safe to share between threads (its pool
hands out connections) and after a fork (the pool notices the new process).
"""

from django.core.cache.backends import redis as django_redis


class ReusedClientRedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write: bool = False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
