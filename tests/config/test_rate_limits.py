"""Rate limits: failed sign-ins per user name and address, API requests per client, and both letting requests
through when the cache that counts them is down (Redis gone must not take the site with it)."""

import pytest
from django.core.cache import cache

from config.throttling import AnonymousRateThrottle, UserRateThrottle
from tests.factories import ApiUserFactory, ResearcherFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def sign_in(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_failed_sign_ins_lock_the_user_name_from_that_address_for_a_while(client, settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = ResearcherFactory(username="ada")
    user.set_password("right-password")
    user.save()
    for _ in range(3):
        assert sign_in(client, "ada", "wrong").status_code == 200  # the form again, with its error

    locked = sign_in(client, "ada", "right-password")  # even the right password: not checked now
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    assert locked["Retry-After"] == str(settings.LOGIN_WINDOW_SECONDS)
    assert "_auth_user_id" not in client.session

    assert sign_in(client, "ada", "right-password", address="10.0.0.2").status_code == 302  # another address
    cache.clear()  # the window has passed
    assert sign_in(client, "ada", "right-password").status_code == 302


def test_a_successful_sign_in_clears_the_count_and_an_address_has_a_wider_limit(client, settings):
    settings.LOGIN_MAX_FAILURES = 2
    user = ResearcherFactory(username="bob")
    user.set_password("pw-pw-pw-pw")
    user.save()
    sign_in(client, "bob", "wrong")
    assert sign_in(client, "bob", "pw-pw-pw-pw").status_code == 302
    client.logout()
    sign_in(client, "bob", "wrong")
    assert sign_in(client, "bob", "pw-pw-pw-pw").status_code == 302  # the earlier failure was forgotten
    client.logout()
    # With bob's two failures, 5 x 2 failures from this address, over many user names:
    for number in range(8):
        assert sign_in(client, f"guess{number}", "wrong").status_code == 200
    assert sign_in(client, "bob", "pw-pw-pw-pw").status_code == 429


def test_the_admin_sign_in_goes_through_the_limited_page(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response.url == "/accounts/login/?next=/admin/"


def test_api_requests_beyond_the_rate_get_429(client, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "2/minute"})
    monkeypatch.setattr(AnonymousRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "2/minute"})
    client.force_login(ApiUserFactory())
    statuses = [client.get("/api/v1/snapshots/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    client.logout()
    # Anonymous callers: refused before any count where they may not read (401), counted where they may.
    assert client.get("/api/v1/snapshots/").status_code == 401
    anonymous = [client.get("/api/v1/schema/").status_code for _ in range(3)]
    assert anonymous == [200, 200, 429]


def test_with_the_cache_down_the_api_and_sign_in_still_work(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "1/minute", "anon": "1/minute"})
    for name in ("get", "get_many", "set", "add", "incr", "delete"):
        monkeypatch.setattr(cache, name, unreachable)
    user = ResearcherFactory(username="cy")
    user.set_password("pw-pw-pw-pw")
    user.save()
    assert sign_in(client, "cy", "wrong").status_code == 200
    assert sign_in(client, "cy", "pw-pw-pw-pw").status_code == 302
    assert [client.get("/api/v1/snapshots/").status_code for _ in range(3)] == [200, 200, 200]
