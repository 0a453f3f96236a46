"""``python -m grandmodel.monitor session=<journal | session name> [reference=<training run>]``.

The design's performance alerts over rolling windows of a paper session's journal, feature and
action drift against the training split (thresholds calibrated by bootstrap), a report with plots
and a ``monitoring`` tracking run under the training run. The work is
:func:`grandmodel.deploy.monitor.report.run_monitor`.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.errors import reported

register_configs()


@hydra.main(config_path="../conf", config_name="monitor", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.deploy.monitor.report import run_monitor

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        validate(cfg)
        result = run_monitor(cfg)
        s = result["summary"]
        print(f"{s['recommendation']}: alerts [{s['alerts']}]; win rate {s['win_rate']:.2f} over "
              f"{s['closed_trades']:.0f} closed trades, Sharpe {s['sharpe_ratio']:.2f}, consistency "
              f"{s['decision_consistency']:.2f}, confidence {s['model_confidence']:.2f}")  # fmt: skip
        if "feature_drift_alarms" in s:
            print(f"drift: {s['feature_drift_alarms']} of {s['windows']} windows alarm on features, "
                  f"{s.get('action_drift_alarms', 0)} on actions")  # fmt: skip
        where = f"MLflow run {result['run_id']}" if result["run_id"] else "no MLflow run"
        print(f"report: {result['files']['report.md']}; {where}")


if __name__ == "__main__":
    cli.run(main, "monitor", "grandmodel.monitor")
