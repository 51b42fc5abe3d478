"""`runmailserver`: the supervisor, listener registry, signals and TLS certificates."""
