"""What production tells the apps above it, which listen (production imports none of them).

`subject_erased` is sent inside erase_subject's transaction, after production blanked its own rows:
    turn_ids: pks of the subject's turns (rows kept, text gone), user_pseudonyms: the per-source
    pseudonyms Label Studio and test items knew the subject by, turn_keys: (source name, turn id as
    it was before erasure) for rows keyed on it — to find them, never to store.
A receiver erases what its app owns for those turns (labelling: the Label Studio tasks and the
annotators' free text; shadow: candidate answers and judge texts) and returns a dict of counts,
which the tombstone and the audit row record. Receivers must be idempotent: a re-run sends the
turns again.
"""
from django.dispatch import Signal

subject_erased = Signal()
