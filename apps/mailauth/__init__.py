"""Mail authentication: SPF, DKIM, DMARC and the DNS adapter they share (no Django inside)."""
