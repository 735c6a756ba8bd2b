"""Test set versions say whether they hold redacted text: every version there is now was frozen (or
begun) before promotion redacted, so it gets False; new versions get True. A frozen version's flag
is guarded like its hash (the guard of migration 0002 is widened; on SQLite the table is rebuilt by
AddField, which drops its triggers, so they are made again)."""
import importlib

from django.db import migrations, models

# The items' guards as migration 0002 made them (unchanged).
SQLITE_ITEM_GUARDS = importlib.import_module("testsets.migrations.0002_frozen_versions_are_immutable").SQLITE[:3]

PG = """
CREATE OR REPLACE FUNCTION testsets_version_frozen_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.status = 'frozen' THEN
        RAISE EXCEPTION 'test set version % is frozen: it cannot be deleted', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = 'frozen' AND (NEW.status <> OLD.status OR NEW.sha256 <> OLD.sha256
            OR NEW.number <> OLD.number OR NEW.testset_id <> OLD.testset_id OR NEW.item_count <> OLD.item_count
            OR NEW.redacted <> OLD.redacted) THEN
        RAISE EXCEPTION 'test set version % is frozen: it cannot change', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$ LANGUAGE plpgsql;
"""

SQLITE_TRIGGERS = ("testsets_item_frozen_insert", "testsets_item_frozen_update", "testsets_item_frozen_delete",
                   "testsets_version_frozen_update", "testsets_version_frozen_delete")
SQLITE = [
    *SQLITE_ITEM_GUARDS,
    """CREATE TRIGGER testsets_version_frozen_update BEFORE UPDATE ON testsets_testsetversion
       WHEN OLD.status = 'frozen' AND (NEW.status <> OLD.status OR NEW.sha256 <> OLD.sha256
         OR NEW.number <> OLD.number OR NEW.testset_id <> OLD.testset_id OR NEW.item_count <> OLD.item_count
         OR NEW.redacted <> OLD.redacted)
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: it cannot change'); END""",
    """CREATE TRIGGER testsets_version_frozen_delete BEFORE DELETE ON testsets_testsetversion
       WHEN OLD.status = 'frozen'
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: it cannot be deleted'); END""",
]


def unguard(apps, schema_editor):
    """SQLite: the table rebuild fails while the items' triggers name the table; they are made again after."""
    if schema_editor.connection.vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PG)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("testsets", "0004_export_jobs")]
    operations = [
        migrations.RunPython(unguard, migrations.RunPython.noop),
        # Existing rows: False (they hold raw text); then the default for new versions is True.
        migrations.AddField(model_name="testsetversion", name="redacted", field=models.BooleanField(default=False)),
        migrations.AlterField(model_name="testsetversion", name="redacted", field=models.BooleanField(default=True)),
        migrations.RunPython(guard, migrations.RunPython.noop),
    ]
