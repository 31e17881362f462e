"""What can go wrong when the hub calls a partner system, in the hub's own words.

The outbound clients (`integrations/`) raise subclasses of these, so that the
use cases in `hub/` can tell "the partner said no" from "the partner could not
be reached" without knowing anything about HTTP.
"""

from __future__ import annotations

# The longest one call to a partner takes, its retries included: then it is Unavailable.
CALL_DEADLINE_SECONDS = 20.0


class PartnerError(Exception):
    """A call to a partner system failed."""


class PartnerRejected(PartnerError):
    """The partner refused the request; asking again the same way will not help."""


class PartnerUnavailable(PartnerError):
    """The partner could not be reached or kept failing; try again later."""


class PartnerBadResponse(PartnerError):
    """The partner answered something that makes no sense; try again later."""
