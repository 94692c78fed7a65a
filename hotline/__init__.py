"""The application shell: CLI, config, service wiring."""
