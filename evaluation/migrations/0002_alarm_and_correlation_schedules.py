from django.db import migrations


def schedule(apps, schema_editor):
    """Alarms whose webhook post failed are tried again every 5 minutes; the correlation is checked
    daily, which raises (stores and posts) what it finds (django-celery-beat rows, editable in the admin)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(name="evalgap: post pending alarms",
                                       defaults={"task": "evaluation.tasks.alarms_post_pending", "interval": every_5})
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.get_or_create(name="evalgap: daily correlation check",
                                       defaults={"task": "evaluation.tasks.correlation_check", "interval": daily})


class Migration(migrations.Migration):
    dependencies = [("evaluation", "0001_offline_runs_scores_alarms"),
                    ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]
