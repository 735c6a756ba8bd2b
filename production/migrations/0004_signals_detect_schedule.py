from django.db import migrations

NAME = "evalgap: detect signals on dirty sessions"


def schedule(apps, schema_editor):
    """Signal detection every 5 minutes, as a django-celery-beat row (editable in the admin). Ingest only
    writes; its caller chains one detection run, and this catches up on anything left dirty."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(name=NAME, defaults={"task": "production.tasks.signals_detect",
                                                            "interval": every_5})


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("production", "0003_signals_definitions"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, unschedule)]
