from django.dispatch import Signal

# Sent after any change to the taxonomy has been committed. Taxonomy knows nothing of who
# listens: labelling connects to it to push the new config to Label Studio.
taxonomy_changed = Signal()
