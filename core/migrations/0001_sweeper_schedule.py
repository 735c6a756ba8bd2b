from django.db import migrations


def schedule(apps, schema_editor):
    """The stuck-job sweeper every 5 minutes, as a django-celery-beat row (editable in the admin)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(name="evalgap: sweep stuck jobs",
                                       defaults={"task": "core.tasks.jobs_sweep", "interval": every_5})


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]
