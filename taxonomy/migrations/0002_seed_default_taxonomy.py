from django.db import migrations

# A starting taxonomy for RAG and assistant systems; admins evolve it from here.
DEFAULT = [
    ("RETRIEVAL", "Retrieval failure", "The answer suffers from what was (not) retrieved.", None),
    ("RETRIEVAL.MISS", "Retrieval miss", "The passage that answers the question exists but was not retrieved.",
     "RETRIEVAL"),
    ("RETRIEVAL.IRRELEVANT", "Irrelevant context", "The answer relies on retrieved passages that do not address the "
     "question.", "RETRIEVAL"),
    ("FAITHFULNESS", "Unfaithful answer", "The answer is not supported by its sources.", None),
    ("FAITHFULNESS.HALLUCINATION", "Hallucinated content", "States facts found neither in the contexts nor true.",
     "FAITHFULNESS"),
    ("FAITHFULNESS.CONTRADICTS_CONTEXT", "Contradicts the context", "Says the opposite of the retrieved passages.",
     "FAITHFULNESS"),
    ("COMPLETENESS", "Incomplete answer", "Right as far as it goes, but leaves out what the user needed.", None),
    ("COMPLETENESS.PARTIAL", "Partial answer", "Answers part of the question only.", "COMPLETENESS"),
    ("COMPLETENESS.NO_ANSWER", "No answer given", "Says it does not know, or answers nothing, where an answer "
     "exists.", "COMPLETENESS"),
    ("INTENT", "Misunderstood intent", "Answers a different question than the one asked.", None),
    ("CONTEXT", "Lost conversation context", "Ignores or misreads what was said earlier in the conversation "
     "(pronouns, follow-ups).", None),
    ("CLARIFICATION", "Needed clarification", "The question was ambiguous; the system should have asked back.", None),
    ("OUTDATED", "Outdated information", "Was true once, no longer is.", None),
    ("FORMAT", "Wrong format", "Right content in the wrong form (length, structure, language, tone).", None),
    ("REFUSAL", "Over-refusal", "Refused or deflected a legitimate request.", None),
    ("SAFETY", "Unsafe", "Harmful, toxic, or leaks private data.", None),
]


def seed(apps, schema_editor):
    FailureMode = apps.get_model("taxonomy", "FailureMode")
    by_code = {}
    for code, name, description, parent in DEFAULT:
        mode, _ = FailureMode.objects.get_or_create(
            code=code, defaults={"name": name, "description": description, "parent": by_code.get(parent)}
        )
        by_code[code] = mode


class Migration(migrations.Migration):
    dependencies = [("taxonomy", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
