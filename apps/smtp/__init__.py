"""SMTP: inbound MX and authenticated submission on aiosmtpd."""
