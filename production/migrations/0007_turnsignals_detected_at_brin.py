"""A BRIN index on production_turnsignals.detected_at (PostgreSQL only).

The correlation rollup finds the days to recompute with `detected_at > last mark`; without an index
that is a scan of every signals row (most of the 1.8-3 s of a report after a new day, 1M turns).
Detection appends its rows, so detected_at follows the table's physical order and a BRIN index (a
few kilobytes, next to nothing for COPY to maintain) narrows the scan to the last block ranges.
Not in the model's Meta: SQLite has no BRIN, and there the table is small."""
from django.db import migrations

INDEX = "production_turnsignals_detected_at_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON production_turnsignals "
                              f"USING brin (detected_at)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("production", "0006_ingestjob_created_by")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
