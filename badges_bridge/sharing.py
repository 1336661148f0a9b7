"""Share links of an earned badge: LinkedIn's "add to profile", social networks, e-mail and an embed snippet.

Every link is built from the badge's public page at the provider; nothing here talks to a
network. The parameters follow each site's documented URL format.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from django.utils.html import format_html
from django.utils.translation import gettext as _

from badges_bridge.data import ShareLinks

LINKEDIN_ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"
LINKEDIN_SHARE = "https://www.linkedin.com/sharing/share-offsite/"
X_SHARE = "https://x.com/intent/tweet"
FACEBOOK_SHARE = "https://www.facebook.com/sharer/sharer.php"


def linkedin_add_to_profile(
    name: str, issuer: str, issued_at: datetime | None, expires_at: datetime | None, url: str, credential_id: str
) -> str:
    """LinkedIn's form that adds the badge to the learner's profile as a licence or certification."""
    params: list[tuple[str, str | int]] = [("startTask", "CERTIFICATION_NAME"), ("name", name)]
    if issuer:
        params.append(("organizationName", issuer))
    if issued_at is not None:
        params += [("issueYear", issued_at.year), ("issueMonth", issued_at.month)]
    if expires_at is not None:
        params += [("expirationYear", expires_at.year), ("expirationMonth", expires_at.month)]
    params.append(("certUrl", url))
    if credential_id:
        params.append(("certId", credential_id))
    return f"{LINKEDIN_ADD_TO_PROFILE}?{urlencode(params)}"


def share_links(
    *,
    name: str,
    issuer: str,
    url: str,
    image_url: str,
    issued_at: datetime | None,
    expires_at: datetime | None,
    credential_id: str,
) -> ShareLinks:
    """Every share action of one badge whose public page is ``url``."""
    message = (
        _("I earned the {badge} badge from {issuer}.").format(badge=name, issuer=issuer)
        if issuer
        else (_("I earned the {badge} badge.").format(badge=name))
    )
    subject = _("My {badge} badge").format(badge=name)
    body = _("{message} See it here: {url}").format(message=message, url=url)
    return ShareLinks(
        linkedin_add_to_profile=linkedin_add_to_profile(name, issuer, issued_at, expires_at, url, credential_id),
        linkedin=f"{LINKEDIN_SHARE}?{urlencode({'url': url})}",
        x=f"{X_SHARE}?{urlencode({'text': message, 'url': url})}",
        facebook=f"{FACEBOOK_SHARE}?{urlencode({'u': url})}",
        email=f"mailto:?subject={quote(subject, safe='')}&body={quote(body, safe='')}",
        embed_html=str(embed_html(name, url, image_url)),
    )


def embed_html(name: str, url: str, image_url: str) -> str:
    """The badge image (or its name when it has none) linking to its public page; every value escaped."""
    if image_url:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" width="150" height="150"></a>',
            url,
            image_url,
            name,
        )
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, name)
