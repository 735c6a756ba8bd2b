from django.db import migrations, models

import production.signal_definitions


class Migration(migrations.Migration):
    """Signal definitions version 2: session_ended, failure_probability, a definition version per row.

    Rows that exist already were computed under version 1 and are marked so; `detect_signals --full`
    recomputes them under the current version (docs/signals.md has the changelog).
    """

    dependencies = [
        ('production', '0003_ingestjob_is_a_job'),
    ]

    operations = [
        migrations.AddField(
            model_name='turnsignals',
            name='definition_version',
            field=models.PositiveSmallIntegerField(default=1),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name='turnsignals',
            name='definition_version',
            field=models.PositiveSmallIntegerField(default=production.signal_definitions.current_definition_version),
        ),
        migrations.AddField(
            model_name='turnsignals',
            name='failure_probability',
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name='turnsignals',
            name='session_ended',
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name='turnsignals',
            index=models.Index(condition=models.Q(('failure_candidate', True)), fields=['-failure_probability', 'turn'], name='signals_candidate_prob_idx'),
        ),
    ]
