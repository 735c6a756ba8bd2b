"""Resolutions (an admin's decision on an item annotators disagreed on) belong to labelling, which
owns judging. The model leaves this app's state only; labelling 0008 adopts the same table, with
its rows, and renames it."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("testsets", "0002_frozen_versions_are_immutable"),
        ("labelling", "0007_pairwise_tasks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Resolution")]),
    ]
