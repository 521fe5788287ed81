"""campaign_svc — Campaign lifecycle, scheduling and live progress."""
