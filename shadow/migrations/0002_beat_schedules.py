from django.db import migrations


def schedules(apps, schema_editor):
    """Daily replay (03:00 UTC, yesterday's turns) for releases marked for shadowing, the daily judge
    pass after it (05:00), mirrored answers paired every 15 minutes, and the monthly human audit of
    the judge (the 2nd, 03:30): django-celery-beat rows, visible and editable in the admin."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")

    def cron(minute, hour, day_of_month="*"):
        return CrontabSchedule.objects.get_or_create(minute=minute, hour=hour, day_of_month=day_of_month,
                                                     month_of_year="*", day_of_week="*", timezone="UTC")[0]

    every_15, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    rows = [
        ("evalgap: shadow replay of releases marked for shadowing", "shadow.tasks.shadow_runs_daily",
         {"crontab": cron("0", "3")}),
        ("evalgap: shadow judge of unjudged pairs", "shadow.tasks.shadow_judge_daily", {"crontab": cron("0", "5")}),
        ("evalgap: pair mirrored shadow answers", "shadow.tasks.mirror_pairs_sync", {"interval": every_15}),
        ("evalgap: monthly human audit of the shadow judge", "shadow.tasks.monthly_audit",
         {"crontab": cron("30", "3", "2")}),
    ]
    for name, task, schedule in rows:
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, **schedule})


class Migration(migrations.Migration):
    dependencies = [("shadow", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedules, migrations.RunPython.noop)]
