"""The signed-in user, with their permission sets, read from the shared cache instead of three queries on every
request.

Django's ModelBackend loads the user and their own and group permissions on every request; the review page
answers many requests a second per annotator, and these rows change a few times a year. The user is cached with
its permission sets on it (``_perm_cache``), one entry per user. A change clears the entries it affects at once
(the signal receivers below, connected by ``AnnotationConfig.ready``), in every process, since the cache is
shared; the TTL bounds what a change made behind Django's back (raw SQL) can leave stale. With the cache down,
everything is read from the database as usual.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.cache import cache

from config.cache_calls import cache_call

TTL_SECONDS = 300


def _user_key(user_id) -> str:
    return f"auth:user:{user_id}"


class CachedPermissionsBackend(ModelBackend):
    def get_user(self, user_id):
        """The signed-in user of a request (``request.user``), kept ``TTL_SECONDS`` in the cache.

        A save of the user (a new password, deactivation in the admin) clears it, so a changed password
        still signs the old sessions out at once.
        """
        user = cache_call(cache.get, _user_key(user_id))
        if user is None:
            user = super().get_user(user_id)
            if user is not None and user.is_active:
                self.get_all_permissions(user)  # sets ``_perm_cache``, which travels with the cached user
                cache_call(cache.set, _user_key(user_id), user, TTL_SECONDS)
        return user if self.user_can_authenticate(user) else None


def permissions_forget(user_ids) -> None:
    keys = [_user_key(user_id) for user_id in user_ids]
    if keys:
        cache_call(cache.delete_many, keys)


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
