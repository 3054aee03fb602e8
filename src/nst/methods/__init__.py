"""One LightningModule per method, with the runner that drives it."""
