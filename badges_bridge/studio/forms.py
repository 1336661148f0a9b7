"""The Studio page's forms: one form for a course badge (with its series of courses), and the staff actions.

Validation is the model's own (:meth:`CourseBadge.clean` through the ModelForm's ``full_clean``), so the page,
the staff API and the admin refuse the same bad input with the same message on the same field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from badges_bridge import course_setup
from badges_bridge.forms import REVOKE_REASON_MAX_LENGTH, DescribedMixin
from badges_bridge.models import (
    SERIES_COURSE_CRITERIA,
    BadgeTemplate,
    CourseBadge,
    Criterion,
    EvidenceFact,
    RevokePolicy,
)

#: Blank course rows offered by the series editor (the page's script adds more).
SERIES_EXTRA_ROWS = 3
#: How datetime inputs send their value (``<input type="datetime-local">``).
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _modes(text: str) -> list[str]:
    return [mode.strip() for mode in (text or "").split(",") if mode.strip()]


class UTCDateTimeField(forms.DateTimeField):
    """A date and time typed in UTC, whatever the site's time zone (Studio shows UTC too)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_formats=LOCAL_FORMATS, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        """Show a stored moment in UTC."""
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def to_python(self, value: Any) -> datetime | None:
        """Read the typed value as UTC."""
        if isinstance(value, str) and value.strip():
            for fmt in LOCAL_FORMATS:
                try:
                    return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
                except ValueError:
                    continue
            raise forms.ValidationError(_("Enter a date and time, e.g. 2026-09-01 00:00."), code="invalid")
        return super().to_python(value)


class TemplateChoiceField(forms.ModelChoiceField):
    """Templates by id; a picker shows them as cards with their images."""

    widget = forms.RadioSelect

    def label_from_instance(self, obj: BadgeTemplate) -> str:
        return obj.name


class CourseBadgeForm(DescribedMixin, forms.ModelForm):
    """Add or change a course badge: template, criterion, series, window, revoke policy, expiry, approval, evidence.

    Pass the course key on the instance (``CourseBadge(course_key=...)`` for a new badge) and the series
    formset as ``series_rows``; the form copies the formset's rows into ``series``.
    """

    template = TemplateChoiceField(
        queryset=BadgeTemplate.objects.none(),
        empty_label=None,
        label=_("Badge template"),
        help_text=_("The badge learners receive. Templates come from your organisation's badge accounts."),
        error_messages={"required": _("Choose the badge template to award.")},
    )
    criterion = forms.ChoiceField(
        choices=Criterion.choices,
        widget=forms.RadioSelect,
        label=_("Learners earn the badge when they"),
        initial=Criterion.PASSED,
    )
    grade_threshold = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_value=Decimal(100),
        decimal_places=2,
        label=_("Grade threshold (percent)"),
        help_text=_("A percentage from 0 to 100: 80 means a course grade of 80 % or more."),
        error_messages={
            "min_value": _("Enter a percentage from 0 to 100."),
            "max_value": _("Enter a percentage from 0 to 100."),
            "invalid": _("Enter a percentage from 0 to 100, e.g. 80 or 85.5."),
            "max_decimal_places": _("Use at most two decimals, e.g. 85.25."),
        },
    )
    confirm_small_threshold = forms.BooleanField(
        required=False,
        label=_("Yes, I mean a threshold of 1 percent or less"),
    )
    certificate_modes = forms.CharField(
        required=False,
        max_length=255,
        label=_("Certificate modes"),
        help_text=_("Comma separated, e.g. verified, professional. Leave empty to accept any mode."),
    )
    series_quantity = forms.ChoiceField(
        choices=[("all", _("All of the courses")), ("some", _("At least this many of them"))],
        widget=forms.RadioSelect,
        initial="all",
        required=False,
        label=_("How many courses of the series"),
    )
    series_required = forms.IntegerField(
        required=False,
        min_value=1,
        label=_("Number of courses"),
        help_text=_("For example 3, to require any 3 of 5 courses."),
        error_messages={"min_value": _("Enter a number of courses of at least 1.")},
    )
    series = forms.JSONField(required=False, widget=forms.HiddenInput)
    seen_version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    earned_after = UTCDateTimeField(
        required=False,
        label=_("Earned from (UTC)"),
        help_text=_("Only learners who meet the criterion at or after this moment earn the badge. Empty: no start."),
    )
    earned_before = UTCDateTimeField(
        required=False,
        label=_("Earned until (UTC)"),
        help_text=_("Only learners who meet the criterion before this moment earn the badge. Empty: no end."),
    )
    revoke_policy = forms.ChoiceField(
        choices=RevokePolicy.choices,
        widget=forms.RadioSelect,
        initial=RevokePolicy.NEVER,
        label=_("Take the badge back"),
    )
    expires_after_days = forms.IntegerField(
        required=False,
        min_value=1,
        label=_("Expires after (days)"),
        help_text=_("The badge expires this many days after it is awarded. Empty: it does not expire."),
        error_messages={"min_value": _("Enter a number of days of at least 1, or leave empty.")},
    )
    requires_approval = forms.BooleanField(
        required=False,
        label=_("Course staff approve each award"),
        help_text=_(
            "Learners who meet the criterion wait in the approval queue on the badge's page until a staff member "
            "approves or declines them."
        ),
    )
    evidence = forms.MultipleChoiceField(
        choices=EvidenceFact.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("Evidence sent with the badge"),
        help_text=_("What the badge service receives about the achievement; it shows it on the badge."),
    )
    suppress_notification = forms.BooleanField(
        required=False,
        label=_("Ask the badge service not to e-mail the learner"),
        help_text=_("Credly honours this; at Accredible the group's own settings decide."),
    )

    class Meta:
        model = CourseBadge
        # Enabling and disabling are actions of the badge page, not fields of this form.
        fields = [name for name in course_setup.EDITABLE_FIELDS if name != "enabled"]

    def __init__(self, *args: Any, series_rows: forms.BaseFormSet | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.series_rows = series_rows
        course_key = self.instance.course_key
        offered = course_setup.allowed_templates(course_key)
        if self.instance.template_id:
            offered = offered | BadgeTemplate.objects.filter(pk=self.instance.template_id)
        #: The cards of the template picker (any template id is accepted, then checked by the model).
        self.offered_templates = list(offered.select_related("account").distinct())
        self.fields["template"].queryset = BadgeTemplate.objects.select_related("account")
        self.template_locked = self.instance.has_issuances()
        if not self.is_bound:
            self.initial["evidence"] = self.instance.evidence_facts()
            self.initial["series_quantity"] = "some" if self.instance.series_required else "all"
            self.initial["seen_version"] = self.instance.version if self.instance.pk else None

    def clean_evidence(self) -> str:
        """The chosen facts as the model stores them, in their usual order."""
        chosen = set(self.cleaned_data.get("evidence") or ())
        return ",".join(fact for fact in EvidenceFact.values if fact in chosen)

    def clean_certificate_modes(self) -> str:
        return ",".join(_modes(self.cleaned_data.get("certificate_modes", "")))

    def clean(self) -> dict[str, Any]:
        """Keep only the parameters of the chosen criterion, take the series from its rows, check the template."""
        cleaned = super().clean()
        criterion = cleaned.get("criterion")
        if criterion != Criterion.GRADE_AT_LEAST:
            cleaned["grade_threshold"] = None
        if criterion != Criterion.CERTIFICATE:
            cleaned["certificate_modes"] = ""
        if criterion == Criterion.SERIES:
            cleaned["series"] = self.series_rows.items() if self.series_rows is not None else []
            if cleaned.get("series_quantity") == "some":
                if cleaned.get("series_required") is None and "series_required" not in self.errors:
                    self.add_error("series_required", _("Enter how many courses of the series are required."))
            else:
                cleaned["series_required"] = None
        else:
            cleaned["series"] = []
            cleaned["series_required"] = None
            self.errors.pop("series_required", None)
        self._check_small_threshold(cleaned)
        self._check_version(cleaned.get("seen_version"))
        template = cleaned.get("template")
        if template is not None and self._duplicate(template):
            self.add_error("template", _("This course already has a badge with this template; edit that one."))
        return cleaned

    def _check_version(self, seen: int | None) -> None:
        """Refuse to overwrite a change someone else saved while this form was open."""
        if not self.instance.pk or seen is None:
            return
        stored = CourseBadge.objects.filter(pk=self.instance.pk).values_list("version", flat=True).first()
        if stored is not None and stored != seen:
            self.add_error(
                None,
                _(
                    "Someone else saved this badge while you were editing it (it is now version %(version)d). "
                    "Open the badge again to see their change, then make yours."
                )
                % {"version": stored},
            )

    def _post_clean(self) -> None:
        """The model's checks, without a second message on a field the form already refused."""
        refused = {name: len(messages) for name, messages in self._errors.items()}
        super()._post_clean()
        for name, count in refused.items():
            self._errors[name].data = self._errors[name].data[:count]

    def _check_small_threshold(self, cleaned: dict[str, Any]) -> None:
        threshold = cleaned.get("grade_threshold")
        small = threshold is not None and Decimal(0) < threshold <= Decimal(1)
        if small and not cleaned.get("confirm_small_threshold"):
            self.instance.grade_threshold = threshold  # the model's own check must not call it missing
            self.add_error(
                "grade_threshold",
                _(
                    "%(value)s means %(value)s percent, not %(percent)s percent: thresholds are percentages from 0 "
                    "to 100. Enter %(percent)s for %(percent)s %%, or tick 'Yes, I mean a threshold of 1 percent or "
                    "less' to keep %(value)s %%."
                )
                % {"value": f"{threshold.normalize():f}", "percent": f"{(threshold * 100).normalize():f}"},
            )

    def _duplicate(self, template: BadgeTemplate) -> bool:
        badges = CourseBadge.objects.filter(course_key=self.instance.course_key, template=template)
        return badges.exclude(pk=self.instance.pk).exists() if self.instance.pk else badges.exists()

    @property
    def small_threshold_refused(self) -> bool:
        """Whether the confirmation of a threshold of 1 % or less should be offered."""
        return "grade_threshold" in self.errors and "percent, not" in " ".join(self.errors["grade_threshold"])

    def errors_in_order(self) -> list[tuple[str, str, str]]:
        """(field id, label, message) of every error, in the order of the page, for the error summary."""
        found = [(None, "", str(message)) for message in self.non_field_errors()]
        for name in self.fields:
            if name in self.errors:
                anchor = _ANCHORS.get(name, self[name].auto_id)
                label = str(_LABELS.get(name, self.fields[name].label))
                found.extend((anchor, label, str(message)) for message in self.errors[name])
            if name == "series" and self.series_rows is not None:
                found.extend(self.series_rows.errors_in_order())
        return found


#: Where the error summary links to, for fields that are groups of inputs or hidden.
_ANCHORS = {
    "template": "bb-template-group",
    "criterion": "bb-criterion-group",
    "series": "bb-series",
    "revoke_policy": "bb-revoke-group",
    "evidence": "bb-evidence-group",
}
_LABELS = {"series": _("Courses of the series")}


class SeriesCourseForm(DescribedMixin, forms.Form):
    """One course of a series and its own condition."""

    course_key = forms.CharField(
        required=False,
        max_length=255,
        label=_("Course key"),
        widget=forms.TextInput(attrs={"placeholder": "course-v1:Org+Course+Run", "spellcheck": "false"}),
    )
    criterion = forms.ChoiceField(
        choices=[(value, label) for value, label in Criterion.choices if value in SERIES_COURSE_CRITERIA],
        initial=Criterion.PASSED,
        label=_("Condition"),
    )
    grade_threshold = forms.DecimalField(
        required=False,
        decimal_places=2,
        label=_("Grade (percent)"),
        error_messages={"invalid": _("Enter a percentage from 0 to 100.")},
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "100"}),
    )
    certificate_modes = forms.CharField(
        required=False, max_length=255, label=_("Certificate modes"), help_text=_("Empty: any mode.")
    )

    def item(self) -> dict[str, Any] | None:
        """The row as the model stores it; None for a blank row."""
        data = self.cleaned_data
        key = (data.get("course_key") or "").strip()
        if not key:
            return None
        criterion = data.get("criterion") or Criterion.PASSED
        threshold = data.get("grade_threshold") if criterion == Criterion.GRADE_AT_LEAST else None
        modes = _modes(data.get("certificate_modes", "")) if criterion == Criterion.CERTIFICATE else []
        return {
            "course_key": key,
            "criterion": criterion,
            "grade_threshold": f"{threshold.normalize():f}" if threshold is not None else None,
            "certificate_modes": modes,
        }


class BaseSeriesFormSet(forms.BaseFormSet):
    """The rows of the series editor; blank rows are ignored."""

    def items(self) -> list[dict[str, Any]]:
        """The filled rows, as the model stores them (rows with their own errors are left out)."""
        rows = []
        for form in self.forms:
            if form.is_valid() and (item := form.item()) is not None:
                rows.append(item)
        return rows

    def errors_in_order(self) -> list[tuple[str, str, str]]:
        """(field id, label, message) of each row's own errors, for the error summary."""
        found = []
        for number, form in enumerate(self.forms, start=1):
            for name, messages in form.errors.items():
                label = _("Course %(number)d, %(field)s") % {"number": number, "field": form.fields[name].label}
                found.extend((form[name].auto_id, str(label), str(message)) for message in messages)
        return found


SeriesFormSet = forms.formset_factory(
    SeriesCourseForm, formset=BaseSeriesFormSet, extra=SERIES_EXTRA_ROWS, max_num=50, validate_max=True
)


def series_initial(badge: CourseBadge) -> list[dict[str, Any]]:
    """The series editor's rows for a stored badge."""
    return [
        {
            "course_key": item.get("course_key", ""),
            "criterion": item.get("criterion", Criterion.PASSED),
            "grade_threshold": item.get("grade_threshold"),
            "certificate_modes": ", ".join(item.get("certificate_modes") or ()),
        }
        for item in (badge.series or [])
        if isinstance(item, dict)
    ]


def series_problem_rows(badge: CourseBadge, rows: BaseSeriesFormSet) -> set[int]:
    """Indexes of the editor's rows whose course the model refuses (marked invalid on the page)."""
    from badges_bridge.models import series_course_problem

    bad = set()
    for index, form in enumerate(rows.forms):
        if form.is_valid() and (item := form.item()) is not None and series_course_problem(item, badge.course_key):
            bad.add(index)
    return bad


class ReviewForm(DescribedMixin, forms.Form):
    """Approve or decline learners of the approval queue."""

    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("decline", _("Decline"))])
    issuances = forms.TypedMultipleChoiceField(
        coerce=int,
        choices=[],
        label=_("Learners"),
        error_messages={"required": _("Select at least one learner.")},
    )
    reason = forms.CharField(
        required=False,
        max_length=REVOKE_REASON_MAX_LENGTH,
        label=_("Reason for declining"),
        help_text=_("Required to decline; kept with the decision."),
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, queue_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["issuances"].choices = [(pk, pk) for pk in queue_ids]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("decision") == "decline" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", _("Give the reason for declining: the learners' record keeps it."))
        return cleaned


class RevokeForm(DescribedMixin, forms.Form):
    """Revoke one learner's badge, with the reason."""

    reason = forms.CharField(
        max_length=REVOKE_REASON_MAX_LENGTH,
        label=_("Reason"),
        help_text=_("Sent to the badge service where it accepts one, and kept in the audit log."),
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Give the reason for revoking the badge.")},
    )
