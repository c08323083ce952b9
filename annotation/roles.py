"""The roles, as Django groups with their permissions.

Researchers manage everything of the project's own apps through the admin; annotators read the catalog and
work in the review queues; API users (engineers who pull the dataset) read frozen snapshots over the REST API
and download their exports. The groups are made by a data migration and re-synced after every ``migrate``, so
models added later get their permissions without another hand-written migration.
"""

from typing import Any

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
API_USER = "api user"

# Every permission of these apps goes to researchers.
RESEARCHER_APPS = ("jobs", "annotation", "mining", "training", "evaluation")
RESEARCHER_EXTRA = (("auth", "view_user"), ("auth", "view_group"))
ANNOTATOR_PERMISSIONS = (
    ("annotation", "view_category"),
    ("annotation", "view_product"),
    ("annotation", "view_instance"),
    ("annotation", "view_image"),
    ("annotation", "work_review_queues"),
)
API_USER_PERMISSIONS = (("annotation", "read_dataset"), ("annotation", "view_datasetsnapshot"))


def sync_role_groups(*, group_model: Any, permission_model: Any) -> None:
    """Creates the groups if missing and adds the permissions they should have (never removes any by hand)."""
    researcher, _ = group_model.objects.get_or_create(name=RESEARCHER)
    researcher_permissions = list(
        permission_model.objects.filter(content_type__app_label__in=RESEARCHER_APPS)
    )
    for app_label, codename in RESEARCHER_EXTRA:
        researcher_permissions += list(
            permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
        )
    researcher.permissions.add(*researcher_permissions)

    for group_name, permissions in ((ANNOTATOR, ANNOTATOR_PERMISSIONS), (API_USER, API_USER_PERMISSIONS)):
        group, _ = group_model.objects.get_or_create(name=group_name)
        for app_label, codename in permissions:
            group.permissions.add(
                *permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
            )


def sync_role_groups_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # After each of the project's apps: its permissions are created by the auth app's own post_migrate handler,
    # which runs before this one for the same app, and apps later in INSTALLED_APPS would otherwise be missed.
    if sender.label not in RESEARCHER_APPS:
        return
    from django.contrib.auth.models import Group, Permission

    sync_role_groups(group_model=Group.objects.db_manager(using).model, permission_model=Permission)


def user_is_researcher(user: Any) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=RESEARCHER).exists()))


def user_can_review(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("annotation.work_review_queues"))


def user_is_annotator(user: Any) -> bool:
    return bool(user.is_authenticated and user.groups.filter(name=ANNOTATOR).exists())


def user_can_read_dataset(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("annotation.read_dataset"))
