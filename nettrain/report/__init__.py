"""Terminal tables and plots for runs (rich, matplotlib). No TensorFlow here.

matplotlib and pandas are imported only inside the plot functions, so importing this package
stays cheap.
"""

from nettrain.report.plots import (
    atomic_savefig,
    atomic_write_bytes,
    confusion_matrix_plot,
    learning_curves,
    predicted_vs_actual,
)
from nettrain.report.runs import collect_runs, print_runs
from nettrain.report.tables import (
    classification_report_table,
    confusion_matrix_table,
    epoch_line,
    make_console,
    metrics_table,
    print_metrics,
)

__all__ = [
    "atomic_savefig",
    "atomic_write_bytes",
    "classification_report_table",
    "collect_runs",
    "confusion_matrix_plot",
    "confusion_matrix_table",
    "epoch_line",
    "learning_curves",
    "make_console",
    "metrics_table",
    "predicted_vs_actual",
    "print_metrics",
    "print_runs",
]
