from django.db import migrations


def first_version(apps, schema_editor):
    FailureMode = apps.get_model("taxonomy", "FailureMode")
    TaxonomyVersion = apps.get_model("taxonomy", "TaxonomyVersion")
    if TaxonomyVersion.objects.exists():
        return
    snapshot = [{"code": m.code, "name": m.name, "description": m.description,
                 "parent": m.parent.code if m.parent_id else None, "active": m.active}
                for m in FailureMode.objects.select_related("parent").order_by("code")]
    TaxonomyVersion.objects.create(number=1, snapshot=snapshot, reason="default taxonomy", created_by="system")


class Migration(migrations.Migration):
    dependencies = [("taxonomy", "0003_taxonomyversion_alter_failuremode_options_and_more")]
    operations = [migrations.RunPython(first_version, migrations.RunPython.noop)]
