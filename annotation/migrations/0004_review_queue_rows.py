from django.db import migrations

KINDS = ("image_verification", "duplicate_merge", "hard_negative", "synthetic_validation")


def create_queue_rows(apps, schema_editor):
    ReviewQueue = apps.get_model("annotation", "ReviewQueue")
    for kind in KINDS:
        ReviewQueue.objects.get_or_create(kind=kind)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0003_review_queues")]

    operations = [migrations.RunPython(create_queue_rows, migrations.RunPython.noop)]
