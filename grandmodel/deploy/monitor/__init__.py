"""Monitoring a session: the design's performance alerts and bootstrap-calibrated drift detection
(:mod:`~grandmodel.deploy.monitor.metrics`), and the report (:mod:`~grandmodel.deploy.monitor.report`)."""
