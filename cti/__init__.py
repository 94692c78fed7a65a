"""CTI side: AMI client, call tracker, and (next round) the agent bridge."""
