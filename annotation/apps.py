from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Catalog and annotation"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from annotation.review.caching import queue_settings_changed
        from annotation.roles import sync_role_groups_after_migrate
        from config import permission_cache

        # Models added by later migrations get their permissions here too, not only in the first data migration.
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="annotation.sync_role_groups")
        # A researcher's change to a queue's settings reaches the claims of this process at once (the others
        # within a few seconds): the claims read the settings from a short-lived cache.
        for signal in (post_save, post_delete):
            signal.connect(
                queue_settings_changed, sender="annotation.ReviewQueue", dispatch_uid=f"{signal}-queue"
            )
        # Cached permission sets are cleared when groups or permissions change (config/permission_cache.py).
        permission_cache.connect()
