"""The paper's experiments in one command: four variants x three pair-selection modes.

    python evaluation/reproduce_paper.py --data_dir=MFEC_DATASET --mfcc_data_dir=MFCC_DATASET \
        --output_dir=results/paper

--data_dir is a dataset built by data_preparation/build_dataset.py with its default MFEC
features, --mfcc_data_dir the same videos built with --features=mfcc (the CNN-MFCC variants
read it); both must split the videos alike. Every (variant, mode) is trained in
OUTPUT_DIR/runs/<variant>_<mode> for --num_epochs epochs on a fixed subset of about
--max_train_windows training windows, its validation split scored after every epoch (model
choice) and its test split scored with every epoch's checkpoint (the convergence figure).
Writes into --output_dir: results.json (every number), paper_tables.md (AP, AUC and EER per
variant and mode at the best validation epoch, the paper's AP beside each, and what the
measured AP says about the paper's three claims) and convergence.png (test EER per epoch).
Started again, finished runs and scores are not redone and an interrupted run resumes.
"""
import os
import sys

from absl import flags, logging

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "", "Dataset with MFEC speech features (the 3D-CNN-MFEC "
                    "variants); empty = the demo dataset.")
flags.DEFINE_string("mfcc_data_dir", "", "The same videos built with --features=mfcc (the "
                    "CNN-MFCC variants).")
flags.DEFINE_string("output_dir", None, "Folder for the runs, results.json, paper_tables.md "
                    "and convergence.png.")
flags.DEFINE_list("variants", ["CNN-MFCC-1", "CNN-MFCC-3", "3D-CNN-MFEC-1", "3D-CNN-MFEC-3"],
                  "Variants to run.")
flags.DEFINE_list("selection_modes", ["none", "hard", "adaptive"], "Pair selection modes: none "
                  "(all pairs), hard (the reference's fixed margin), adaptive.")
flags.DEFINE_integer("num_epochs", 3, "Epochs per run.")
flags.DEFINE_integer("max_train_windows", 4000, "Training windows per epoch (a fixed subset; "
                     "0 = all).")
flags.DEFINE_integer("batch_size", 32, "Pairs per training batch.")
flags.DEFINE_float("learning_rate", 0.01, "Initial learning rate of every run.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "auto"], "Every run's "
                  "train.py --precision (float32: as the README's table was measured).")
flags.DEFINE_integer("seed", 0, "Seed of every run.")


def config_from_flags():
    """ExperimentConfig from the parsed flags; UsageError for values that cannot work."""
    from avmatch.experiments import VARIANTS, ExperimentConfig
    from avmatch.pair_selection import SELECTION_MODES

    if not FLAGS.output_dir:
        raise UsageError("--output_dir is required")
    unknown = [v for v in FLAGS.variants if v not in VARIANTS]
    unknown += [m for m in FLAGS.selection_modes if m not in SELECTION_MODES]
    if unknown or not FLAGS.variants or not FLAGS.selection_modes:
        raise UsageError(f"unknown or no variants/selection modes {unknown}; variants: "
                         f"{', '.join(VARIANTS)}; modes: {', '.join(SELECTION_MODES)}")
    if FLAGS.num_epochs < 1 or FLAGS.max_train_windows < 0 or FLAGS.batch_size < 2:
        raise UsageError("--num_epochs must be >= 1, --max_train_windows >= 0 and "
                         "--batch_size >= 2")
    kinds = {VARIANTS[v].features for v in FLAGS.variants}
    if "mfcc" in kinds and not FLAGS.mfcc_data_dir:
        raise UsageError("the CNN-MFCC variants need --mfcc_data_dir: the same videos built "
                         "with data_preparation/build_dataset.py --features=mfcc")
    data_dirs = {"mfcc": FLAGS.mfcc_data_dir} if "mfcc" in kinds else {}
    if "mfec" in kinds:
        from avprep.demo_data import dataset_or_demo
        data_dirs["mfec"] = dataset_or_demo(FLAGS.data_dir, log=logging.info)
    return ExperimentConfig(
        output_dir=FLAGS.output_dir, data_dirs=data_dirs, variants=tuple(FLAGS.variants),
        selection_modes=tuple(FLAGS.selection_modes), num_epochs=FLAGS.num_epochs,
        max_train_windows=FLAGS.max_train_windows, batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate, precision=FLAGS.precision, seed=FLAGS.seed)


def check_datasets(data_dirs):
    """UsageError unless each dataset holds the features of its kind and, with both kinds,
    the two split every video alike (so every variant trains and is tested on the same
    windows of the same speakers)."""
    from avprep import records

    splits = {}
    for kind, data_dir in data_dirs.items():
        with reported(FileNotFoundError, ValueError, prefix=f"{data_dir}: "):
            manifest = records.read_manifest(data_dir)
        found = ((manifest.get("features") or {}).get("speech") or {}).get("kind", "mfec")
        if found != kind:
            raise UsageError(f"{data_dir} holds {found} speech features, expected {kind} "
                             f"(build_dataset.py --features={kind})")
        splits[kind] = {item["video_id"]: item.get("split") for item in manifest.get("files", [])
                        if item.get("status") == "ok"}
    if len(splits) == 2 and splits["mfec"] != splits["mfcc"]:
        raise UsageError(f"{data_dirs['mfec']} and {data_dirs['mfcc']} split the videos "
                         "differently: build both from the same input folders and split settings")


def train_run(train_config):
    """Trains (or resumes) one run; a damaged dataset or a bad setting is a UsageError."""
    from avmatch.checkpoints import CheckpointError
    from avmatch.input_pipeline import DatasetError, naming_damaged_shards
    from avmatch.training import Trainer

    with reported(DatasetError, CheckpointError, FileNotFoundError, FloatingPointError,
                  ValueError, prefix=f"{train_config.train_dir}: "), \
            naming_damaged_shards(train_config.data_dir):
        Trainer(train_config, train_config.data_dir).run()


def tower_parameters(train_config, speech_shape):
    """{"speech", "mouth", "total"} trainable parameters of a run's towers, and the instance."""
    from avmatch.instance import MatchingInstance
    from avmatch.training import parameter_count

    instance = MatchingInstance.create(train_config.model_speech_name,
                                       train_config.model_mouth_name, speech_shape)
    speech = parameter_count(instance.speech_net.trainable_variables)
    mouth = parameter_count(instance.mouth_net.trainable_variables)
    return {"speech": speech, "mouth": mouth, "total": speech + mouth}, instance


def test_scores(train_config, instance, info, epochs):
    """{epoch (str): fold_metrics of the test split} for every epoch row of the run, scored
    with the checkpoint that epoch ended with (info: the run's DatasetInfo); cached in the
    run folder (atomic writes, one epoch at a time), so a restart scores only what is
    missing."""
    from avmatch import checkpoints, metrics
    from avmatch.experiments import TEST_SCORES_NAME, read_json
    from avmatch.scoring import make_scorer, score_split
    from avprep import records

    path = os.path.join(train_config.train_dir, TEST_SCORES_NAME)
    scores = read_json(path, {})
    scorer = make_scorer(instance)
    for row in epochs:
        if str(row["epoch"]) in scores:
            continue
        checkpoint = os.path.join(train_config.train_dir, f"ckpt-{row['global_step']}")
        if not os.path.exists(checkpoint + ".index"):
            logging.warning("%s is gone: epoch %d is not scored on the test split", checkpoint,
                            row["epoch"])
            continue
        checkpoints.restore_towers(checkpoint, instance)
        labels, distances = score_split(instance, info, "test", scorer=scorer)
        scores[str(row["epoch"])] = metrics.fold_metrics(labels, distances,
                                                         num_folds=min(10, len(labels) // 2))
        records.write_json_atomic(path, scores)
    return scores


def write_outputs(config, run_records):
    """results.json, paper_tables.md and convergence.png of the runs so far."""
    from avmatch import experiments, plots
    from avprep import records
    from avprep.atomic import atomic_write

    records.write_json_atomic(os.path.join(config.output_dir, "results.json"),
                              {"config": config.to_dict(), "runs": run_records})
    lines = ["# The paper's experiments, as measured", "",
             f"Data: {config.data_dirs}; {config.num_epochs} epochs of at most "
             f"{config.max_train_windows or 'all'} training windows; batch {config.batch_size}; "
             f"learning rate {config.learning_rate}. Test metrics at the epoch of best "
             "validation AUC (10-fold means); paper AP read off its chart (LRW).", "",
             experiments.paper_table(run_records), "", *experiments.findings(run_records), ""]
    atomic_write(os.path.join(config.output_dir, "paper_tables.md"),
                 lambda handle: handle.write("\n".join(lines)), binary=False)
    plots.save_convergence(
        os.path.join(config.output_dir, "convergence.png"), run_records,
        {"paper, all pairs (3D-CNN-MFEC-3)": experiments.PAPER_EER_ALL_PAIRS,
         "paper, selection (3D-CNN-MFEC-3)": experiments.PAPER_EER_SELECTION})
    return "\n".join(lines)


def run_grid(config):
    """Trains and scores every run of the grid (skipping finished work); returns the table."""
    from avmatch import experiments
    from avmatch.input_pipeline import load_dataset_info
    from avmatch.nets.nets_factory import input_shape

    os.makedirs(config.output_dir, exist_ok=True)
    run_records = []
    for variant in config.variants:
        for mode in config.selection_modes:
            train_config = experiments.train_config(config, variant, mode)
            epochs = experiments.finished_epochs(train_config.train_dir)
            if len(epochs) < config.num_epochs:
                logging.info("== %s: training", experiments.run_name(variant, mode))
                train_run(train_config)
                epochs = experiments.finished_epochs(train_config.train_dir)
            info = load_dataset_info(train_config.data_dir, required_splits=("test",),
                                     expected_speech=input_shape(
                                         train_config.model_speech_name)[:2])
            parameters, instance = tower_parameters(train_config, info.speech_shape)
            logging.info("%s: %d trainable parameters (speech %d, mouth %d)", variant,
                         parameters["total"], parameters["speech"], parameters["mouth"])
            scores = test_scores(train_config, instance, info, epochs)
            run_records.append(experiments.run_record(variant, mode, parameters, epochs, scores))
            write_outputs(config, run_records)
    return write_outputs(config, run_records)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags()
    check_datasets(config.data_dirs)
    from avmatch.input_pipeline import DatasetError
    try:
        with reported(DatasetError, ValueError):
            print(run_grid(config))
    except KeyboardInterrupt:
        sys.exit(130)
    print(f"wrote {config.output_dir}: results.json, paper_tables.md, convergence.png")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
