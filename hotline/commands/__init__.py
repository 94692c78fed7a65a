"""One module per `hotline` sub-command; each exposes a click command named after it."""
