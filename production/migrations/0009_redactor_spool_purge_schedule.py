from django.db import migrations

NAME = "evalgap: delete ingest spool files past their use"


def schedule(apps, schema_editor):
    """Spool files of large API bodies hold raw personal data: purge the finished ones hourly
    (production.services.ingest.ingest_spool_purge; editable in the admin)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(name=NAME, defaults={"task": "production.tasks.ingest_spool_purge",
                                                            "interval": hourly})


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("production", "0008_turn_composite_session_key"),
                    ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, unschedule)]
