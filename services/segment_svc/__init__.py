"""segment_svc — Audience: users, channels, segments and the recipient stream."""
