"""Tables and computed sentences of the pretrained-network sections."""

from __future__ import annotations

from analysis import stats, symbolic
from analysis.plots.transfer import LABELS
from analysis.tables import budget_note, markdown


def budget_callout(profile, denoised, transferred) -> str:
    """What this build trained, for the chapter's callout (the smoke caveat only under smoke)."""
    lines = [f"This copy was built with the **{profile.name}** profile: the autoencoders trained for "
             f"{denoised.provenance['config']['epochs']} epoch(s) on {denoised['sizes']['train']:,} digits, and "
             f"each transfer run took {transferred['steps']:,} optimizer steps, over "
             f"{len(transferred['seeds'])} seed(s)."]
    if profile.name == "smoke":
        lines.append("Under `smoke` that is far too little training: the figures and sentences only show that "
                     "the code runs; the comparisons mean something at the default and full profiles.")
    return budget_note(lines)


def formula_count(row: dict) -> int | None:
    """The displayed count (eq-cnn-conv-parameters, eq-transfer-dense-parameters) for a layer, None for others."""
    if "kernel" in row:
        return symbolic.conv_parameters(*row["kernel"], row["channels_in"], row["channels_out"])
    if "units_in" in row:
        return symbolic.dense_count(row["units_in"], row["units_out"])
    return None


def layer_checks(result) -> dict:
    """How many layers have weights, and on how many the formula equals Keras's count."""
    rows = [row for row in result["layers"] if formula_count(row) is not None]
    matching = sum(formula_count(row) == row["parameters"] for row in rows)
    layer_sum = sum(row["parameters"] for row in result["layers"])
    return {"weighted": len(rows), "matching": matching, "layer_sum": layer_sum,
            "formula_sum": sum(formula_count(row) for row in rows)}


def layer_table(result):
    rows = []
    for row in result["layers"]:
        formula = formula_count(row)
        shape = " × ".join(str(d) for d in row["output_shape"])
        check = "—" if formula is None else ("✓" if formula == row["parameters"] else f"✗ ({formula:,})")
        # Keras numbers the input layer's name per process (input_layer_3, ...): show it plainly.
        name = "input" if row["type"] == "InputLayer" else row["name"]
        rows.append([f"`{name}`", row["type"], shape, f"{row['parameters']:,}", check])
    rows.append(["**total**", "", "", f"**{result['total']:,}**", ""])
    return markdown(rows, ["layer", "type", "output shape", "parameters", "formula"],
                    align=["left", "left", "left", "right", "center"],
                    note="Built by keras.applications.VGG16(weights=None); ✓: the count of "
                         "@eq-cnn-conv-parameters or @eq-transfer-dense-parameters equals Keras's.")


STEP_NAMES = {"array": "`img_to_array`", "batch": "`np.expand_dims(…, 0)`", "ready": "`preprocess_input`"}


def preprocessing_table(result):
    rows = [[STEP_NAMES[s["step"]], " × ".join(str(d) for d in s["shape"]), s["dtype"],
             f"{s['minimum']:.1f} to {s['maximum']:.1f}",
             ", ".join(f"{m:.1f}" for m in s["channel_means"])] for s in result["steps"]]
    return markdown(rows, ["step", "shape", "type", "range", "channel means (in order)"],
                    note=f"The photograph: {result['titles'][0]}.")


def predictions_table(result):
    rows = [[title] + [f"{p['name']} ({100 * p['probability']:.1f}%)" for p in predictions]
            for title, predictions in zip(result["titles"], result["predictions"])]
    return markdown(rows, ["photograph"] + [f"top {k}" for k in range(1, len(rows[0]))])


def transfer_table(result):
    rows = []
    for size in result["sizes"]:
        cells = [stats.summary(result["test_accuracy"][m][str(size)]).text(digits=1, percent=True, count=False)
                 for m in result["methods"]]
        rows.append([f"{result['labelled'][str(size)]:,}"] + cells)
    return markdown(rows, ["labelled images"] + [LABELS[m] for m in result["methods"]],
                    note=f"Test accuracy on {result['test_images']:,} test images of {result['task']}, "
                         f"mean ± std over {len(result['seeds'])} seeds. Data: {result.data_source(result['dataset'])}.")


def verdicts(result, a: str, b: str) -> list[str]:
    """a against b at each labelled-set size, paired over seeds (same labelled set, same order)."""
    lines = []
    for size in result["sizes"]:
        comparison = stats.compare(result["test_accuracy"][a][str(size)], result["test_accuracy"][b][str(size)],
                                   names=(LABELS[a], LABELS[b]))
        lines.append(f"with {result['labelled'][str(size)]:,} labelled images, {comparison.sentence()}")
    return lines


def best_by_size(result) -> str:
    """Which method had the highest mean test accuracy at each labelled-set size, in words."""
    best = []
    for size in result["sizes"]:
        means = {m: stats.summary(result["test_accuracy"][m][str(size)]).mean for m in result["methods"]}
        finite = {m: v for m, v in means.items() if v == v}
        best.append(max(finite, key=finite.get) if finite else None)
    if None in best:
        return "some sizes have no finite result, so no method can be named best everywhere"
    if len(set(best)) == 1:
        return f"{LABELS[best[0]]} had the highest mean test accuracy at every labelled-set size"
    parts = [f"{LABELS[method]} with {result['labelled'][str(size)]:,}" for size, method in zip(result["sizes"], best)]
    return "the highest mean test accuracy went to " + "; ".join(parts) + " labelled images"


def vgg_cifar_text(result) -> str:
    """The VGG16-on-CIFAR-10 results in words (Markdown), or the callout saying why there are none.

    ``result`` is :data:`~analysis.experiments.transfer.vgg16_cifar`'s result
    or, where it did not run, :func:`~analysis.experiments.transfer.vgg16_cifar_plan`;
    both hold ``available`` and ``reason``.
    """
    if not result["available"]:
        return ("::: {.callout-note}\n## No VGG16 transfer results in this copy\n"
                f"This comparison was not run here: {result['reason']}. Its results are never made up; "
                "build the book with the `full` profile on a machine that has the weights "
                "(@sec-transfer-vgg16-predictions) to see them.\n:::\n")
    bullets = {pair: ";\n".join(f"- {line}" for line in verdicts(result, *pair)) + "."
               for pair in (("fine_tune", "scratch"), ("frozen", "scratch"))}
    return (f"Each run took {result['steps']:,} Adam steps on mini-batches of {result['batch_size']}, the images upsampled to "
            f"{result['input_size']} × {result['input_size']}, over {len(result['seeds'])} seed(s); "
            f"{best_by_size(result)}. Paired over seeds, fine-tuning block 5 against training from scratch:"
            f"\n\n{bullets['fine_tune', 'scratch']}\n\nand the frozen features with a new head against "
            f"training from scratch:\n\n{bullets['frozen', 'scratch']}\n")
