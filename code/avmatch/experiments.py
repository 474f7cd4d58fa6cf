"""The paper's experiment grid: four model/feature variants x three pair-selection modes.

Torfi et al. (2017) compare CNN-MFCC-1/-3 (a 2-D SyncNet-style baseline on MFCC) with
3D-CNN-MFEC-1/-3 (the coupled 3-D towers on log Mel energies), each trained on all pairs and
with online pair selection; "-1" = static features only, "-3" = with first and second
derivatives. The paper's average precision (%) and EER-per-epoch curve are read off its
figures (about +/-0.5; the reference's notes, outside this repository; the README's "The
paper's experiments" lists them beside the measured ones).

Each (variant, mode) is one ordinary training run (avmatch.training.Trainer) in its own
folder, RUN_ROOT/<variant>_<mode>; its checkpoint of every epoch is kept so that the test
split can be scored per epoch afterwards (the convergence figure) while model choice stays
on the validation split (the table's numbers are the test metrics of the best validation
epoch).
"""
import dataclasses
import json
import os

from avmatch.config import TrainConfig
from avmatch.pair_selection import SELECTION_MODES

RUN_ROOT = "runs"
TEST_SCORES_NAME = "test_per_epoch.json"  # per-run cache of the test metrics of each epoch


@dataclasses.dataclass(frozen=True)
class Variant:
    """One of the paper's models: its towers (nets_factory names), the speech features its
    dataset must hold (build_dataset --features) and the paper's AP (%) without and with
    online pair selection."""
    speech_net: str
    mouth_net: str
    features: str
    paper_ap: tuple


VARIANTS = {
    "CNN-MFCC-1": Variant("cnn_speech_static", "cnn_mouth", "mfcc", (87.3, 90.2)),
    "CNN-MFCC-3": Variant("cnn_speech", "cnn_mouth", "mfcc", (86.8, 90.4)),
    "3D-CNN-MFEC-1": Variant("lipread_speech_static", "lipread_mouth", "mfec", (92.5, 95.1)),
    "3D-CNN-MFEC-3": Variant("lipread_speech", "lipread_mouth", "mfec", (93.8, 96.5)),
}
# The paper's convergence figure (3D-CNN-MFEC-3): test EER (%) per epoch, read off the plot.
PAPER_EER_ALL_PAIRS = (27.0, 24.0, 22.0, 21.0, 19.0)
PAPER_EER_SELECTION = (23.0, 18.3, 16.7, 15.4, 15.1)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """What reproduce_paper.py reads.

    data_dirs: {"mfec": dataset, "mfcc": dataset} (a kind no chosen variant needs may be
    absent). num_epochs, max_train_windows, batch_size, learning_rate, precision, seed: every
    run's training settings (max_train_windows: TrainConfig's cap, 0 = all; precision:
    float32 by default, as the published table was measured).
    """
    output_dir: str
    data_dirs: dict
    variants: tuple = tuple(VARIANTS)
    selection_modes: tuple = SELECTION_MODES
    num_epochs: int = 3
    max_train_windows: int = 4000
    batch_size: int = 32
    learning_rate: float = TrainConfig.learning_rate
    precision: str = "float32"
    seed: int = 0

    def to_dict(self):
        payload = dataclasses.asdict(self)
        payload["variants"], payload["selection_modes"] = list(self.variants), list(
            self.selection_modes)
        return payload


def run_name(variant, mode):
    """Folder name of one run, e.g. "3D-CNN-MFEC-3_adaptive"."""
    return f"{variant}_{mode}"


def run_dir(config, variant, mode):
    return os.path.join(config.output_dir, RUN_ROOT, run_name(variant, mode))


def train_config(config, variant, mode):
    """The TrainConfig of one run of the grid; ValueError for an unknown variant or mode."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if mode not in SELECTION_MODES:
        raise ValueError(f"unknown selection mode {mode!r}; known: {', '.join(SELECTION_MODES)}")
    spec = VARIANTS[variant]
    return TrainConfig(
        train_dir=run_dir(config, variant, mode),
        data_dir=config.data_dirs[spec.features],
        model_speech_name=spec.speech_net,
        model_mouth_name=spec.mouth_net,
        batch_size=config.batch_size,
        num_epochs=config.num_epochs,
        log_every_n_steps=50,
        learning_rate=config.learning_rate,
        online_pair_selection=mode != "none",
        selection_rule="adaptive" if mode == "adaptive" else "hard",
        # every epoch's checkpoint stays for the per-epoch test scores (plus room for the
        # extra checkpoints that interruptions write)
        max_checkpoints_to_keep=config.num_epochs + 10,
        max_train_windows=config.max_train_windows,
        precision=config.precision,
        seed=config.seed,
    )


def read_json(path, default=None):
    """The JSON object in `path`, or `default` when the file does not exist."""
    if not os.path.exists(path):
        return default
    with open(path) as handle:
        return json.load(handle)


def finished_epochs(train_dir):
    """The epoch rows of a run's results.json (avmatch.training), [] before its first epoch."""
    return (read_json(os.path.join(train_dir, "results.json")) or {}).get("epochs", [])


def summarise(metrics_dict):
    """{"eer", "auc", "ap", "ap_std"}: the fold means of avmatch.metrics.fold_metrics'
    result, and the standard deviation of AP over the folds."""
    summary = {name: metrics_dict[name]["mean"] for name in ("eer", "auc", "ap")}
    summary["ap_std"] = metrics_dict["ap"].get("std", 0.0)
    return summary


def run_record(variant, mode, parameters, epochs, test_scores):
    """Everything one run contributes to results.json.

    epochs: results.json rows of the run; test_scores: {epoch (str): fold_metrics result}.
    Returns a dict: variant, mode, parameters {speech, mouth, total}, epochs [{epoch,
    train_seconds, validation {eer, auc, ap}, test {...}}], best_epoch (by validation AUC,
    the last epoch without a validation split) and test (the metrics of that epoch).
    """
    rows = []
    for row in epochs:
        entry = {"epoch": row["epoch"], "train_seconds": row["train_seconds"]}
        if row.get("validation"):
            entry["validation"] = summarise(row["validation"])
        if str(row["epoch"]) in test_scores:
            entry["test"] = summarise(test_scores[str(row["epoch"])])
        rows.append(entry)
    scored = [row for row in rows if "validation" in row] or rows[-1:]
    best = max(scored, key=lambda row: row.get("validation", {}).get("auc", 0.0))
    return {"variant": variant, "mode": mode, "parameters": parameters, "epochs": rows,
            "best_epoch": best["epoch"], "test": best.get("test")}


def paper_ap(variant, mode):
    """The paper's AP (%) for a variant: all pairs for mode "none", with selection else."""
    without, with_selection = VARIANTS[variant].paper_ap
    return without if mode == "none" else with_selection


def paper_table(records):
    """Markdown table of the grid, one row per run (records: run_record dicts)."""
    lines = ["| variant | trainable parameters | pair selection | best epoch "
             "| test AP (%, +/- fold std) | test AUC | test EER (%) | paper AP (%) |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for record in records:
        test = record["test"] or {}

        def cell(name, scale=1.0, digits=1):
            return f"{scale * test[name]:.{digits}f}" if name in test else "n/a"

        spread = f" +/- {100 * test['ap_std']:.1f}" if "ap_std" in test else ""

        lines.append(
            f"| {record['variant']} | {record['parameters']['total']:,} | {record['mode']} "
            f"| {record['best_epoch']} | {cell('ap', 100)}{spread} | {cell('auc', 1, 3)} "
            f"| {cell('eer', 100)} | {paper_ap(record['variant'], record['mode'])} |")
    return "\n".join(lines)


def _test_ap(records, variant, mode):
    for record in records:
        if record["variant"] == variant and record["mode"] == mode and record["test"]:
            return record["test"]["ap"]
    return None


def _compare(better, worse, what, records, pairs):
    """A sentence: in how many of `pairs` ((variant_a, mode_a), (variant_b, mode_b)) test AP of
    a beat b, with the AP differences in points."""
    deltas = []
    for first, second in pairs:
        a, b = _test_ap(records, *first), _test_ap(records, *second)
        if a is not None and b is not None:
            deltas.append(100 * (a - b))
    if not deltas:
        return None
    wins = sum(delta > 0 for delta in deltas)
    listed = ", ".join(f"{delta:+.1f}" for delta in deltas)
    return (f"- {what}: {better} had the higher test AP in {wins} of {len(deltas)} "
            f"comparisons (AP difference {better} - {worse}, points: {listed}).")


def findings(records):
    """Markdown bullet lines that answer the paper's three questions from the measured test
    AP: does online selection beat all pairs, does adaptive beat hard, does 3D-CNN-MFEC beat
    CNN-MFCC (each comparison at equal other settings)."""
    variants = sorted({record["variant"] for record in records}, key=list(VARIANTS).index)
    modes = [mode for mode in SELECTION_MODES if any(r["mode"] == mode for r in records)]
    lines = [
        _compare("selection", "all pairs", "Online pair selection vs all pairs", records,
                 [((v, m), (v, "none")) for v in variants for m in modes if m != "none"]),
        _compare("adaptive", "hard", "Adaptive vs hard selection", records,
                 [((v, "adaptive"), (v, "hard")) for v in variants]),
        _compare("3D-CNN-MFEC", "CNN-MFCC", "3D-CNN-MFEC vs CNN-MFCC", records,
                 [((f"3D-CNN-MFEC-{k}", m), (f"CNN-MFCC-{k}", m)) for k in (1, 3)
                  for m in modes]),
    ]
    spreads = sorted(100 * r["test"]["ap_std"] for r in records
                     if r["test"] and "ap_std" in r["test"])
    if spreads:
        lines.append(f"- Noise: the test AP of one run varies by {spreads[len(spreads) // 2]:.1f} "
                     "points (median over runs of the standard deviation over its 10 test "
                     "folds); smaller differences are not evidence either way.")
    return [line for line in lines if line]
