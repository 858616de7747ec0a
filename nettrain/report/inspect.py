"""`nettrain inspect` on a terminal: a variables table, an activations-and-gradients table per
layer, then the findings in plain words with their fixes. (`--json` prints `InspectReport.to_dict()`.)"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from nettrain.report.tables import format_share, format_value, make_console, new_table, print_table


def _shape(shape: list[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def headline(report: Any) -> str:
    return (f"inspect {report.target}: the {report.model_state} model, on one batch of {report.rows} training rows\n"
            f"loss {format_value(report.loss)} ({report.loss_name}); update sizes for one step of {report.optimizer} "
            f"at learning rate {report.learning_rate:g} (from {report.learning_rate_from})")


def variables_table(report: Any):
    table = new_table("Variables (weights; gradient and update on the batch)")
    for name, justify in (("layer", "left"), ("variable", "left"), ("shape", "left"), ("count", "right"),
                          ("mean", "right"), ("std", "right"), ("norm", "right"), ("grad norm", "right"),
                          ("update/weight", "right")):
        table.add_column(name, justify=justify)
    previous = None
    for v in report.variables:
        name = v.name if v.kind == "trainable" else f"{v.name} ({v.kind})"
        table.add_row(Text(v.layer if v.layer != previous else ""), Text(name), Text(_shape(v.shape)),
                      Text(f"{v.count:,}"), Text(format_value(v.mean)), Text(format_value(v.std)),
                      Text(format_value(v.norm)), Text(format_value(v.grad_norm)),
                      Text(format_value(v.update_ratio)))
        previous = v.layer
    return table


def layers_table(report: Any):
    table = new_table("Layers (gradient per weight = kernel gradient norm / sqrt(kernel size))")
    for name, justify in (("layer", "left"), ("type", "left"), ("config key", "left"), ("activation", "left"),
                          ("initializer", "left"), ("params", "right"), ("grad norm", "right"),
                          ("grad/weight", "right"), ("update/weight", "right"), ("dead", "right"),
                          ("saturated", "right")):
        table.add_column(name, justify=justify)
    for layer in report.layers:
        params = f"{layer.trainable:,}" + (f" + {layer.non_trainable:,}" if layer.non_trainable else "")
        table.add_row(Text(layer.name), Text(layer.type), Text(layer.key or "-"), Text(layer.activation or "-"),
                      Text(layer.initializer or "-"), Text(params), Text(format_value(layer.grad_norm)),
                      Text(format_value(layer.grad_per_weight)), Text(format_value(layer.update_ratio)),
                      Text(format_share(layer.dead)), Text(format_share(layer.saturated)))
    return table


def findings_lines(report: Any) -> list[str]:
    if not report.findings:
        return ["findings: none: gradients of similar size from the first layer to the last, no dead or saturated "
                "units, initializers that fit the activations"]
    lines = [f"findings ({len(report.findings)}):"]
    for i, f in enumerate(report.findings, 1):
        lines.append(f"  {i}. {f.message}")
        lines.append(f"     fix: {f.fix}")
    return lines


def print_report(report: Any, console=None) -> None:
    console = console or make_console()
    console.print(headline(report), markup=False, soft_wrap=True)
    print_table(console, variables_table(report))
    print_table(console, layers_table(report))
    for line in findings_lines(report):
        console.print(line, markup=False, soft_wrap=True)
