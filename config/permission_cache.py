"""Each user's row and permissions, read from the shared cache instead of three queries on every request.

The signed-in user is cached with its permission sets on it, one entry per user (``get_user``); a user
object made elsewhere (the test client, a management command) has its sets cached apart.

Django's ModelBackend loads a user's own and group permissions once per request; the review page answers many
requests a second per annotator, and these sets change a few times a year. A change clears the cached sets it
affects at once (the signal receivers below, connected by ``AnnotationConfig.ready``), in every process, since
the cache is shared; the TTL bounds what a change made behind Django's back (raw SQL) can leave stale. With the
cache down, permissions are read from the database as usual.
"""

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.cache import cache

logger = logging.getLogger(__name__)

TTL_SECONDS = 300


def _key(user_id: int) -> str:
    return f"auth:permissions:{user_id}"


def _user_key(user_id) -> str:
    return f"auth:user:{user_id}"


class CachedPermissionsBackend(ModelBackend):
    def get_user(self, user_id):
        """The signed-in user of a request (``request.user``), kept ``TTL_SECONDS`` in the cache.

        A save of the user (a new password, deactivation in the admin) clears it, so a changed password
        still signs the old sessions out at once.
        """
        try:
            user = cache.get(_user_key(user_id))
        except Exception:
            return super().get_user(user_id)
        if user is None:
            user = super().get_user(user_id)
            if user is not None and user.is_active:
                # Its permission sets travel with it (``_perm_cache``): one cache read per request, not two.
                self.get_all_permissions(user)
                _cache_call(cache.set, _user_key(user_id), user, TTL_SECONDS)
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            try:
                cached = cache.get(_key(user_obj.pk))
            except Exception:
                logger.warning(
                    "cache unavailable: permissions of user %s read from the database", user_obj.pk
                )
                return super().get_all_permissions(user_obj, obj)
            if cached is not None:
                user_obj._perm_cache = set(cached)
            else:
                permissions = super().get_all_permissions(user_obj, obj)
                _cache_call(cache.set, _key(user_obj.pk), sorted(permissions), TTL_SECONDS)
        return user_obj._perm_cache


def permissions_forget(user_ids) -> None:
    keys = [key for user_id in user_ids for key in (_key(user_id), _user_key(user_id))]
    if keys:
        _cache_call(cache.delete_many, keys)


def _cache_call(method, *args) -> None:
    try:
        method(*args)
    except Exception:
        logger.warning("cache unavailable: cached permissions not updated")


def user_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set, **kwargs
) -> None:
    """m2m_changed of User.groups and User.user_permissions (from either side)."""
    if not action.startswith("post_") and action != "pre_clear":
        return
    if not reverse:
        permissions_forget([instance.pk])
    elif pk_set:
        permissions_forget(pk_set)
    else:  # a clear() from the group's or permission's side: its users are gone from the relation by now
        permissions_forget(_users_of(instance))


def group_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set, **kwargs
) -> None:
    """m2m_changed of Group.permissions (from either side)."""
    if not action.startswith("post_"):
        return
    groups = [instance.pk] if not reverse else list(pk_set or Group.objects.values_list("pk", flat=True))
    users = get_user_model().objects.filter(groups__in=groups).values_list("pk", flat=True).distinct()
    permissions_forget(list(users))


def group_deleted(sender: Any, instance: Any, **kwargs) -> None:
    """pre_delete of a Group: its members lose what it gave them."""
    permissions_forget(_users_of(instance))


def user_saved(sender: Any, instance: Any, **kwargs) -> None:
    permissions_forget([instance.pk])


def _users_of(instance: Any) -> list[int]:
    if isinstance(instance, Group):
        return list(instance.user_set.values_list("pk", flat=True))
    return list(get_user_model().objects.values_list("pk", flat=True))  # a Permission: anyone may have had it


def connect() -> None:
    from django.contrib.auth.models import Permission
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

    user_model = get_user_model()
    m2m_changed.connect(
        user_permissions_changed, sender=user_model.groups.through, dispatch_uid="perm-groups"
    )
    m2m_changed.connect(
        user_permissions_changed, sender=user_model.user_permissions.through, dispatch_uid="perm-user"
    )
    m2m_changed.connect(
        group_permissions_changed, sender=Group.permissions.through, dispatch_uid="perm-group"
    )
    pre_delete.connect(group_deleted, sender=Group, dispatch_uid="perm-group-deleted")
    pre_delete.connect(group_deleted, sender=Permission, dispatch_uid="perm-deleted")
    post_save.connect(user_saved, sender=user_model, dispatch_uid="perm-user-saved")
    post_delete.connect(user_saved, sender=user_model, dispatch_uid="perm-user-deleted")
