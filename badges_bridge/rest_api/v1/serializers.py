"""Serializers of the learner API: they describe (and render) the plain data classes of badges_bridge.data."""

from __future__ import annotations

from rest_framework import serializers

LEARNER_STATUSES = ["processing", "waiting_consent", "issued", "revoked", "expired", "rejected"]


class ShareLinksSerializer(serializers.Serializer):
    """The share actions of an earned badge."""

    linkedin_add_to_profile = serializers.CharField(help_text="LinkedIn's pre-filled 'add to profile' form.")
    linkedin = serializers.CharField(help_text="Share on LinkedIn.")
    x = serializers.CharField(help_text="Share on X.")
    facebook = serializers.CharField(help_text="Share on Facebook.")
    email = serializers.CharField(help_text="A mailto: link with a subject and a body.")
    embed_html = serializers.CharField(help_text="HTML to paste in a web page (values escaped).")


class LearnerBadgeSerializer(serializers.Serializer):
    """One of the learner's badges."""

    id = serializers.IntegerField()
    course_key = serializers.CharField()
    course_name = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    image_url = serializers.CharField()
    provider = serializers.CharField(help_text="The provider's key, e.g. 'credly'.")
    provider_name = serializers.CharField()
    issuer = serializers.CharField(help_text="The issuing organization.")
    status = serializers.ChoiceField(choices=LEARNER_STATUSES)
    status_text = serializers.CharField(help_text="The status in the learner's words, in the request's language.")
    acceptance = serializers.CharField(help_text="While issued: 'pending' (to accept at the provider) or 'accepted'.")
    public = serializers.BooleanField(allow_null=True, help_text="Public at the provider; null when not known.")
    public_url = serializers.CharField(help_text="The badge's public page ('' unless issued).")
    credential_id = serializers.CharField(help_text="The provider's id of the badge ('' unless issued).")
    qualified_at = serializers.DateTimeField(allow_null=True, help_text="When the learner met the criterion.")
    issued_at = serializers.DateTimeField(allow_null=True, help_text="When the provider issued the badge.")
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(help_text="Why it was revoked, expired or declined ('' when not known).")
    share = ShareLinksSerializer(allow_null=True, help_text="Share actions, once the badge is issued and accepted.")


class ProgressSerializer(serializers.Serializer):
    """How far the learner is towards a criterion."""

    met = serializers.BooleanField(allow_null=True)
    text = serializers.CharField()
    current = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    target = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    percent_done = serializers.IntegerField(allow_null=True, min_value=0, max_value=100)


class AvailableBadgeSerializer(serializers.Serializer):
    """A badge the learner can still earn in one of their courses."""

    course_badge_id = serializers.IntegerField()
    course_key = serializers.CharField()
    course_name = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    image_url = serializers.CharField()
    provider = serializers.CharField()
    provider_name = serializers.CharField()
    criterion = serializers.ChoiceField(choices=["passed", "grade_at_least", "certificate"])
    criterion_text = serializers.CharField()
    progress = ProgressSerializer()


class DataRecipientSerializer(serializers.Serializer):
    """A provider, what it receives about the learner, and for which badges."""

    provider = serializers.CharField()
    provider_name = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())
    badges = serializers.ListField(child=serializers.CharField())


class LearnerPrivacySerializer(serializers.Serializer):
    """The learner's privacy choices and what is sent to whom."""

    consent_required = serializers.BooleanField()
    consent_given = serializers.BooleanField()
    consent_given_at = serializers.DateTimeField(allow_null=True)
    consent_withdrawn_at = serializers.DateTimeField(allow_null=True)
    opted_out = serializers.BooleanField()
    opted_out_at = serializers.DateTimeField(allow_null=True)
    sending_allowed = serializers.BooleanField()
    waiting = serializers.IntegerField(help_text="Badges waiting for the learner's consent or opt-in.")
    recipients = DataRecipientSerializer(many=True)


class PrivacyChoiceSerializer(serializers.Serializer):
    """A change of the learner's own choices; give one or both."""

    consent = serializers.BooleanField(required=False, help_text="true: give consent; false: withdraw it.")
    opted_out = serializers.BooleanField(required=False, help_text="true: opt out of new badges; false: opt back in.")

    def validate(self, attrs: dict) -> dict:
        """At least one choice is needed."""
        if not attrs:
            raise serializers.ValidationError("Give 'consent' or 'opted_out' (true or false).")
        return attrs
