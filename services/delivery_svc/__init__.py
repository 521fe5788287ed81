"""delivery_svc — The sending engine: deliveries, messages and events."""
