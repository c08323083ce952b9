from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Catalog and annotation"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from annotation.roles import sync_role_groups_after_migrate

        # Models added by later migrations get their permissions here too, not only in the first data migration.
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="annotation.sync_role_groups")
