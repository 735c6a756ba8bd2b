"""A turn's two foreign keys become one composite key on PostgreSQL: (source_id, session_id) ->
production_session (source_id, id).

Before, the database checked each turn against its session and, separately, its source: two
row lookups and locks per turn, which made a COPY into production_turn 1.7x the same COPY without
them (benchmarks/README.md, ingest). One composite key is one lookup per turn, still guarantees
that the session and the source exist (a session's own key guarantees its source), and also
guarantees what the two keys did not: that a turn's session belongs to the turn's source.
Deferred to commit, as Django's own keys are. Added NOT VALID and then validated, so an existing
table is checked without blocking writes. SQLite (development only) keeps no key on these columns;
Django's cascades do not depend on the database's.
"""
from django.db import migrations, models

import django.db.models.deletion

FK = "production_turn_session_of_source_fk"


def add_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE production_turn ADD CONSTRAINT {FK} FOREIGN KEY (source_id, session_id) "
            f"REFERENCES production_session (source_id, id) DEFERRABLE INITIALLY DEFERRED NOT VALID")
        schema_editor.execute(f"ALTER TABLE production_turn VALIDATE CONSTRAINT {FK}")


def drop_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE production_turn DROP CONSTRAINT IF EXISTS {FK}")


class Migration(migrations.Migration):

    dependencies = [
        ("production", "0007_turnsignals_detected_at_brin"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="session",
            constraint=models.UniqueConstraint(fields=("source", "id"), name="session_source_id_uniq"),
        ),
        migrations.RunPython(add_key, drop_key, elidable=False),
        migrations.AlterField(
            model_name="turn",
            name="session",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="turns", to="production.session"),
        ),
        migrations.AlterField(
            model_name="turn",
            name="source",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="turns", to="production.source"),
        ),
    ]
