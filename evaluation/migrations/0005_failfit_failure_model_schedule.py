from django.db import migrations


def schedule(apps, schema_editor):
    """The failure model is refitted on the labels monthly (the 1st, 04:00 UTC): a django-celery-beat
    row, editable in the admin. The task is a no-op when the labels did not change."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    monthly, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="4", day_of_month="1", month_of_year="*",
                                                       day_of_week="*", timezone="UTC")
    PeriodicTask.objects.get_or_create(name="evalgap: monthly failure model refit",
                                       defaults={"task": "evaluation.tasks.failure_model_fit", "crontab": monthly})


class Migration(migrations.Migration):
    dependencies = [("evaluation", "0004_failfit_failure_model"),
                    ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, migrations.RunPython.noop)]
