"""Resolution moves here from testsets without touching its rows: first this app's state adopts the
existing table testsets_resolution (no SQL), then the table is renamed to labelling_resolution."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("labelling", "0007_pairwise_tasks"),
        ("testsets", "0003_resolution_moves_to_labelling"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name="Resolution",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("verdict", models.CharField(max_length=30)),
                    ("failure_modes", models.JSONField(blank=True, default=list)),
                    ("reference_answer", models.TextField(blank=True, default="")),
                    ("reason", models.TextField()),
                    ("resolved_at", models.DateTimeField(auto_now_add=True)),
                    ("item", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="resolution",
                                                  to="labelling.batchitem")),
                    ("resolved_by", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT,
                                                      to=settings.AUTH_USER_MODEL)),
                ],
                options={"db_table": "testsets_resolution"},
            ),
        ]),
        migrations.AlterModelTable(name="resolution", table=None),
    ]
