from django.dispatch import Signal

# Sent after a change to the taxonomy has been committed. Taxonomy knows nothing of who
# listens: labelling connects to push the new config to Label Studio.
taxonomy_changed = Signal()

# Sent (inside the merge's transaction) with `old` and `new` codes: whoever stores labels
# re-maps them to the surviving mode.
failure_modes_merged = Signal()
