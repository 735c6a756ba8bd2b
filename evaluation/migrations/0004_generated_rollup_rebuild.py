from django.db import migrations


def rebuild(apps, schema_editor):
    # The rollup counted generated cases as turns until production 0010 gave turns a kind: the next
    # refresh rebuilds it in full (a null mark means "never built").
    apps.get_model("evaluation", "RollupState").objects.update(detected_mark=None, changes_seen=None)


class Migration(migrations.Migration):

    dependencies = [
        ("evaluation", "0003_turn_day_counts_rollup"),
        ("production", "0010_generated_turn_kind"),
    ]

    operations = [migrations.RunPython(rebuild, migrations.RunPython.noop)]
