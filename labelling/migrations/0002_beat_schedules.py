from django.db import migrations


def schedules(apps, schema_editor):
    """The monthly sample (1st of each month, 02:00 UTC) and the annotation pull (every 15 min),
    as django-celery-beat rows: visible and editable in the admin."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    monthly, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="2", day_of_month="1", month_of_year="*",
                                                       day_of_week="*", timezone="UTC")
    every_15, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    PeriodicTask.objects.get_or_create(name="evalgap: monthly labelling sample",
                                       defaults={"task": "labelling.tasks.monthly_sample", "crontab": monthly})
    PeriodicTask.objects.get_or_create(name="evalgap: pull annotations from Label Studio",
                                       defaults={"task": "labelling.tasks.annotations_pull", "interval": every_15})


class Migration(migrations.Migration):
    dependencies = [("labelling", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedules, migrations.RunPython.noop)]
