"""A frozen version's items cannot be inserted, updated or deleted, and a frozen version cannot
be thawed or re-hashed: enforced by the database, whoever writes to it."""
from django.db import migrations

PG = """
CREATE OR REPLACE FUNCTION testsets_item_frozen_guard() RETURNS trigger AS $$
DECLARE vid bigint;
BEGIN
    vid := CASE WHEN TG_OP = 'INSERT' THEN NEW.version_id ELSE OLD.version_id END;
    IF EXISTS (SELECT 1 FROM testsets_testsetversion WHERE id = vid AND status = 'frozen') THEN
        RAISE EXCEPTION 'test set version % is frozen: its items cannot change', vid
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version_id <> OLD.version_id AND EXISTS (
            SELECT 1 FROM testsets_testsetversion WHERE id = NEW.version_id AND status = 'frozen') THEN
        RAISE EXCEPTION 'test set version % is frozen: its items cannot change', NEW.version_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER testsets_item_frozen_guard BEFORE INSERT OR UPDATE OR DELETE ON testsets_testitem
    FOR EACH ROW EXECUTE FUNCTION testsets_item_frozen_guard();

CREATE OR REPLACE FUNCTION testsets_version_frozen_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.status = 'frozen' THEN
        RAISE EXCEPTION 'test set version % is frozen: it cannot be deleted', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = 'frozen' AND (NEW.status <> OLD.status OR NEW.sha256 <> OLD.sha256
            OR NEW.number <> OLD.number OR NEW.testset_id <> OLD.testset_id OR NEW.item_count <> OLD.item_count) THEN
        RAISE EXCEPTION 'test set version % is frozen: it cannot change', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER testsets_version_frozen_guard BEFORE UPDATE OR DELETE ON testsets_testsetversion
    FOR EACH ROW EXECUTE FUNCTION testsets_version_frozen_guard();
"""

SQLITE = [
    """CREATE TRIGGER testsets_item_frozen_insert BEFORE INSERT ON testsets_testitem
       WHEN (SELECT status FROM testsets_testsetversion WHERE id = NEW.version_id) = 'frozen'
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: its items cannot change'); END""",
    """CREATE TRIGGER testsets_item_frozen_update BEFORE UPDATE ON testsets_testitem
       WHEN (SELECT status FROM testsets_testsetversion WHERE id = OLD.version_id) = 'frozen'
         OR (SELECT status FROM testsets_testsetversion WHERE id = NEW.version_id) = 'frozen'
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: its items cannot change'); END""",
    """CREATE TRIGGER testsets_item_frozen_delete BEFORE DELETE ON testsets_testitem
       WHEN (SELECT status FROM testsets_testsetversion WHERE id = OLD.version_id) = 'frozen'
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: its items cannot change'); END""",
    """CREATE TRIGGER testsets_version_frozen_update BEFORE UPDATE ON testsets_testsetversion
       WHEN OLD.status = 'frozen' AND (NEW.status <> OLD.status OR NEW.sha256 <> OLD.sha256
         OR NEW.number <> OLD.number OR NEW.testset_id <> OLD.testset_id OR NEW.item_count <> OLD.item_count)
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: it cannot change'); END""",
    """CREATE TRIGGER testsets_version_frozen_delete BEFORE DELETE ON testsets_testsetversion
       WHEN OLD.status = 'frozen'
       BEGIN SELECT RAISE(ABORT, 'test set version is frozen: it cannot be deleted'); END""",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PG)  # no parameters: the '%' in RAISE messages stay as they are
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("testsets", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
