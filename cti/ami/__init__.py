"""AMI: sans-I/O parser, thin Twisted protocol, reconnecting client and typed actions."""
