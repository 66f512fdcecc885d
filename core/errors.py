"""Errors a service raises for a caller to act on. The API answers each with its `status_code` and
`{"error": code, "message": str(exc)}` (core/api/errors.py), so a service needs no view to refuse well."""


class Refused(ValueError):
    """The request cannot be done as given; the message says why, in words for a person."""

    status_code = 400
    code = "invalid"
