from django.db import migrations, models

# A batch is now a core.jobs.Job: its push states take the job vocabulary.
STATES = {"selected": "pending", "pushing": "running", "pushed": "done"}


def to_job_states(apps, schema_editor):
    Batch = apps.get_model("labelling", "LabellingBatch")
    for old, new in STATES.items():
        Batch.objects.filter(status=old).update(status=new)


def from_job_states(apps, schema_editor):
    Batch = apps.get_model("labelling", "LabellingBatch")
    for old, new in STATES.items():
        Batch.objects.filter(status=new).update(status=old)


class Migration(migrations.Migration):

    dependencies = [
        ('labelling', '0005_project_needs_reconcile'),
    ]

    operations = [
        migrations.RenameField(
            model_name='labellingbatch',
            old_name='last_error',
            new_name='error',
        ),
        migrations.AddField(
            model_name='labellingbatch',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='times the job was claimed (started or resumed)'),
        ),
        migrations.AddField(
            model_name='labellingbatch',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='labellingbatch',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='labellingbatch',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='labellingbatch',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='pending', max_length=20),
        ),
        migrations.RunPython(to_job_states, from_job_states),
    ]
