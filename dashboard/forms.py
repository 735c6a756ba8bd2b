from django import forms

# What each review action needs; taxonomy.services.taxonomy_action does the rest.
REQUIRED = {
    "create": ("code", "name"),
    "rename": ("code", "name"),
    "reparent": ("code",),  # no parent: moves the mode to the top level
    "retire": ("code",),
    "merge": ("code", "into"),
    "approve": ("proposal", "code", "name"),
    "reject": ("proposal", "reason"),
}


class TaxonomyActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in REQUIRED])
    code = forms.CharField(required=False, max_length=100)
    name = forms.CharField(required=False, max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea)
    parent = forms.CharField(required=False, max_length=100)
    into = forms.CharField(required=False, max_length=100)
    proposal = forms.IntegerField(required=False)
    reason = forms.CharField(required=False, widget=forms.Textarea)

    def clean(self):
        data = super().clean()
        for field in REQUIRED.get(data.get("action"), ()):
            if data.get(field) in (None, ""):
                self.add_error(field, f"required to {data['action']}")
        return data

    def action_fields(self) -> dict:
        """The keyword arguments for taxonomy_action: only what was filled in, so that a rename
        without a description keeps the old one."""
        d = self.cleaned_data
        fields = {k: v for k, v in d.items() if v not in (None, "") and k != "action"}
        for key in ("code", "parent", "into"):
            if key in fields:
                fields[key] = fields[key].strip()
        return {"action": d["action"], **fields}
