from django.db import migrations, models


class Migration(migrations.Migration):
    """GenerationRun becomes a core.jobs.Job: its LLM request count moves to llm_requests and
    `attempts` now counts claims, as on every job."""

    dependencies = [
        ('generation', '0001_initial'),
    ]

    operations = [
        migrations.RenameField(model_name='generationrun', old_name='attempts', new_name='llm_requests'),
        migrations.AlterField(
            model_name='generationrun', name='llm_requests',
            field=models.PositiveIntegerField(default=0, help_text='LLM requests made, retries included'),
        ),
        migrations.AddField(
            model_name='generationrun', name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='times the job was claimed (started or resumed)'),
        ),
        migrations.AddField(model_name='generationrun', name='heartbeat_at',
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name='generationrun', name='started_at',
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AlterField(
            model_name='generationrun', name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='pending', max_length=20),
        ),
    ]
