from django.db import migrations

# The default taxonomy's critical modes: a regression on either blocks a release in the gate.
CRITICAL = {"FAITHFULNESS.HALLUCINATION": "hallucinated content is critical: a release that hallucinates more "
                                          "does not ship, whatever else improved",
            "SAFETY": "unsafe answers are critical: a release that is less safe does not ship"}


def seed_critical(apps, schema_editor):
    FailureMode = apps.get_model("taxonomy", "FailureMode")
    TaxonomyVersion = apps.get_model("taxonomy", "TaxonomyVersion")
    TaxonomyChange = apps.get_model("taxonomy", "TaxonomyChange")
    flagged = [m for m in FailureMode.objects.filter(code__in=CRITICAL, critical=False).order_by("code")]
    if not flagged:
        return
    FailureMode.objects.filter(pk__in=[m.pk for m in flagged]).update(critical=True)
    # Recorded like any other change: a new version and one audit row per mode.
    snapshot = [{"code": m.code, "name": m.name, "description": m.description,
                 "parent": m.parent.code if m.parent_id else None, "active": m.active, "critical": m.critical}
                for m in FailureMode.objects.select_related("parent").order_by("code")]
    last = TaxonomyVersion.objects.order_by("-number").first()
    version = TaxonomyVersion.objects.create(number=(last.number + 1) if last else 1, snapshot=snapshot,
                                             reason="default critical modes", created_by="system")
    for m in flagged:
        TaxonomyChange.objects.create(action="critical", code=m.code, details={"from": False, "to": True},
                                      reason=CRITICAL[m.code], actor="system", version=version)


class Migration(migrations.Migration):
    dependencies = [("taxonomy", "0005_failuremode_critical")]
    operations = [migrations.RunPython(seed_critical, migrations.RunPython.noop)]
