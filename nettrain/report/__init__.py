"""Terminal tables and plots for runs (rich, matplotlib). No TensorFlow here.

matplotlib and pandas are imported only inside the plot functions, so importing this package
stays cheap.
"""

from nettrain.report.compare import compare_runs, print_comparison
from nettrain.report.metrics import metric_direction
from nettrain.report.plots import (
    Curves,
    atomic_savefig,
    atomic_write_bytes,
    confusion_matrix_plot,
    learning_curves,
    overlay_curves,
    predicted_vs_actual,
)
from nettrain.report.runs import collect_runs, print_runs, runs_json, select_runs
from nettrain.report.tables import (
    classification_report_table,
    confusion_matrix_table,
    epoch_line,
    format_share,
    format_value,
    make_console,
    metrics_table,
    print_metrics,
)

__all__ = [
    "Curves",
    "atomic_savefig",
    "atomic_write_bytes",
    "classification_report_table",
    "collect_runs",
    "compare_runs",
    "confusion_matrix_plot",
    "confusion_matrix_table",
    "epoch_line",
    "format_share",
    "format_value",
    "learning_curves",
    "make_console",
    "metric_direction",
    "metrics_table",
    "overlay_curves",
    "predicted_vs_actual",
    "print_comparison",
    "print_metrics",
    "print_runs",
    "runs_json",
    "select_runs",
]
