"""What a tenant may use: the one writer of access, the dunning steps, the entitlement answers."""
