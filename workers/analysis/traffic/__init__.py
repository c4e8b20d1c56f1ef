"""DNS traffic analysis of captures: model, findings, renderings (pure code)."""
