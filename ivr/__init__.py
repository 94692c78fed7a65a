"""IVR side: flow model, loader, validator, sans-I/O engine, AGI servers, prompts."""
