"""Forms shared by the operator's admin and the course staff's Studio page."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

#: Longest reason staff can give for a revoke, a manual award or a decline.
REVOKE_REASON_MAX_LENGTH = 500
#: Largest file of learners the manual award page reads.
MANUAL_FILE_MAX_BYTES = 1024 * 1024


class DescribedMixin:
    """Links each input to its help text and error message (``aria-describedby``), and marks it invalid.

    Templates render the help as ``<p id="<input id>-help">`` and the errors as ``<p id="<input id>-error">``.
    Groups of radio buttons or checkboxes get the same ids on their fieldset instead.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._describe()

    def full_clean(self) -> None:
        """Validate, then describe the inputs with their errors."""
        super().full_clean()
        self._describe()

    def _describe(self) -> None:
        errors = self._errors or {}
        for name, field in self.fields.items():
            if isinstance(field.widget, (forms.RadioSelect, forms.CheckboxSelectMultiple, forms.HiddenInput)):
                continue
            auto_id = self[name].auto_id
            shown = (("help", field.help_text), ("error", name in errors))
            ids = [f"{auto_id}-{kind}" for kind, present in shown if present]
            field.widget.attrs.pop("aria-invalid", None)
            field.widget.attrs.pop("aria-describedby", None)
            if ids:
                field.widget.attrs["aria-describedby"] = " ".join(ids)
            if name in errors:
                field.widget.attrs["aria-invalid"] = "true"


class ManualAwardForm(DescribedMixin, forms.Form):
    """Learners to award a course badge to by hand: pasted, or a text or CSV file."""

    users = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 60}),
        label=_("Learners"),
        help_text=_("One username or e-mail address a line. Blank lines and lines starting with # are ignored."),
    )
    file = forms.FileField(
        required=False,
        label=_("Or a file"),
        help_text=_("A text or CSV file (UTF-8): the first column, with an optional 'username' or 'email' header row."),
    )
    reason = forms.CharField(
        required=False,
        max_length=REVOKE_REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        label=_("Reason"),
        help_text=_("Why the badge is awarded (e.g. 'course author'); kept in the audit log."),
    )

    def clean(self):
        """The lines to award: those of the file, or else those pasted."""
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MANUAL_FILE_MAX_BYTES:
                raise forms.ValidationError(_("The file is too large (at most 1 MB)."))
            try:
                data["lines"] = upload.read().decode("utf-8-sig").splitlines()
            except UnicodeDecodeError as err:
                raise forms.ValidationError(_("The file is not UTF-8 text (save it as CSV UTF-8).")) from err
        elif (data.get("users") or "").strip():
            data["lines"] = data["users"].splitlines()
        else:
            raise forms.ValidationError(_("Paste learners or choose a file."))
        return data
