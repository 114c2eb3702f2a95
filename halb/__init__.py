"""halb: a highly available HAProxy + Keepalived pair with one floating VIP."""
