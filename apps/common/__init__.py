"""Building blocks shared by the three demo services (settings, logging, errors, metrics, db, server)."""
