"""All Redis access. Only this package imports `redis`; the rest of the gateway holds stores, never raw commands."""
