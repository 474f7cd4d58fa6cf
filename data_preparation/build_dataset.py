"""Builds a training dataset (sharded TFRecords + manifest.json) from a folder of videos.

  python data_preparation/build_dataset.py --input_dir=VIDEOS --output_dir=DATASET

Each video is decoded at 30 fps with 16 kHz mono audio, its mouth is tracked (dlib), and it
is cut into 0.3 s windows (9 mouth frames, 15 x 40 x 3 MFEC speech frames) each with its
genuine (aligned) and impostor (shifted by --impostor_shift) speech. Bad files are skipped
with a reason (console and manifest); files that are not videos are listed as ignored.
Exit code 0 when records were written, 1 when no usable window came out (then no
manifest.json is written), 2 for bad flags or folders (a folder without any video included).

Sync-corrected clips: --audio_offsets=SYNC.csv (a `code/sync.py --csv` of some of the input
videos) moves each listed video's audio by the offset found there, so its genuine pairs are in
sync; a part made with another offset is made again on a re-run.

Resuming: finished videos are kept in OUTPUT_DIR/parts; re-running the same command skips
them (after a crash or kill too) and rebuilds the shards without duplicates.

Several machines: run with --shard_index=i --num_shards=n on each (same input, same
settings); each processes every n-th video into OUTPUT_DIR/parts and stops. Copy all
parts/ into one OUTPUT_DIR (or use a shared file system) and run once without the shard
flags to process anything missing and write the dataset.
"""
import os
import sys

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None,
                    "Folder of input videos (see --layout), or several separated by commas: "
                    "one dataset from several sources, each file's source in the manifest.")
flags.DEFINE_string("output_dir", None, "Dataset folder to write (created; resumable).")
flags.DEFINE_enum("layout", "flat", ["flat", "lrw", "grid"],
                  "flat: any folder of videos, split by file hash; lrw: WORD/{train,val,test}/; "
                  "grid: GRID speaker folders (video/ + align/), split by speaker, or by "
                  "video for a single speaker. With several input folders: one layout for all "
                  "or a comma-separated list, one per folder (e.g. flat,flat,grid).")
flags.DEFINE_enum("split_by", "file", ["file", "speaker"],
                  "file: each layout's rule above; speaker: every speaker (a layout's label, "
                  "else a group of clips with the same face) in exactly one split.")
flags.DEFINE_float("mouth_border_fraction", 0.4,
                   "Mouth crop border as a share of the mouth width (0 to 1), so crops look "
                   "alike at any resolution (the shipped model expects 0.4).")
flags.DEFINE_boolean("reference_crop", False,
                     "The reference's fixed 30 px crop border instead of "
                     "--mouth_border_fraction.")
flags.DEFINE_float("train_fraction", 0.8, "Share of videos (or speakers) for training.")
flags.DEFINE_float("validation_fraction", 0.1, "Share for validation.")
flags.DEFINE_float("test_fraction", 0.1, "Share for testing.")
flags.DEFINE_float("window_hop", 0.1, "Seconds between window starts (a multiple of 0.1).")
flags.DEFINE_float("impostor_shift", 0.5,
                   "Seconds between a window and its impostor audio (a multiple of 0.02); the "
                   "smallest such shift with --impostor_shift_max.")
flags.DEFINE_float("impostor_shift_max", 0.0,
                   "0: every impostor exactly --impostor_shift away; else each window's shift "
                   "is drawn uniformly from the multiples of 0.02 s in [--impostor_shift, "
                   "this] (e.g. 0.06 and 0.5: every offset a sync check compares).")
flags.DEFINE_float("impostor_other_video_fraction", 0.0,
                   "Share of impostor audio taken from another video of the same split.")
flags.DEFINE_enum("features", "mfec", ["mfec", "mfcc"],
                  "Speech features: log Mel energies (the paper) or MFCC (its baseline).")
flags.DEFINE_integer("num_cepstra", 13,
                     "MFCC coefficients kept with --features=mfcc (13 as SyncNet; 40 keeps the "
                     "frequency size the reference speech tower takes).")
flags.DEFINE_integer("num_channels", 3, "1: static features; 3: + first and second derivatives.")
flags.DEFINE_boolean("drop_silent", False,
                     "Drop windows whose audio is mostly silence (and GRID 'sil' spans).")
flags.DEFINE_float("silence_db", 30.0, "Silence: this many dB below the clip's loud level.")
flags.DEFINE_boolean("drop_static", False, "Drop windows whose mouth crops hardly change.")
flags.DEFINE_float("static_threshold", 1.0,
                   "Lip motion threshold: mean absolute frame difference in grey levels "
                   "(0 to 255).")
flags.DEFINE_integer("num_workers", 1, "Processes decoding and tracking videos.")
flags.DEFINE_integer("shard_index", 0, "This machine's index when several share the videos.")
flags.DEFINE_integer("num_shards", 1, "Number of machines sharing the videos.")
flags.DEFINE_integer("num_output_shards", 4, "TFRecord files per split.")
flags.DEFINE_string("predictor_path", None,
                    "dlib 68-point landmark model (default: face_recognition_models' copy).")
flags.DEFINE_integer("seed", 0, "Seeds the impostor directions and other-video choices.")
flags.DEFINE_string("audio_offsets", None,
                    "A sync.py --csv of some input videos: each one's audio is moved by the "
                    "offset found there before its windows are cut (sync-corrected training "
                    "clips; paths as sync.py wrote them, read from the current folder).")
flags.DEFINE_integer("audio_offset_min_frames", 1,
                     "Only offsets of at least this many frames (either way) are applied.")


def config_from_flags():
    """BuildConfig from the parsed flags; UsageError for bad values."""
    from avprep import audio_offsets, pairs, splits
    from avprep.build import BuildConfig
    from avprep.speech_features import SpeechFeatureConfig
    if not FLAGS.input_dir or not FLAGS.output_dir:
        raise UsageError("--input_dir and --output_dir are required")
    for folder in FLAGS.input_dir.split(","):
        if not os.path.isdir(folder):
            raise UsageError(f"--input_dir {folder} is not a directory")
    if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
        raise UsageError(f"--output_dir {FLAGS.output_dir} exists and is not a directory")
    if FLAGS.audio_offset_min_frames < 1:
        raise UsageError(f"--audio_offset_min_frames must be >= 1, got "
                         f"{FLAGS.audio_offset_min_frames}")
    if FLAGS.audio_offset_min_frames != 1 and not FLAGS.audio_offsets:
        raise UsageError("--audio_offset_min_frames goes with --audio_offsets")
    offsets = {}
    if FLAGS.audio_offsets:
        if not os.path.isfile(FLAGS.audio_offsets):
            raise UsageError(f"--audio_offsets {FLAGS.audio_offsets} is not a file")
        try:
            offsets = audio_offsets.offsets_from_sync_csv(FLAGS.audio_offsets,
                                                          FLAGS.audio_offset_min_frames)
        except (OSError, ValueError) as error:
            raise UsageError(f"--audio_offsets: {error}") from None
    try:
        return BuildConfig(
            input_dir=FLAGS.input_dir, output_dir=FLAGS.output_dir,
            split=splits.SplitConfig(FLAGS.layout, FLAGS.train_fraction,
                                     FLAGS.validation_fraction, FLAGS.test_fraction,
                                     FLAGS.split_by),
            speech=SpeechFeatureConfig(kind=FLAGS.features, num_channels=FLAGS.num_channels,
                                       num_cepstra=FLAGS.num_cepstra),
            window=pairs.WindowConfig(
                hop_seconds=FLAGS.window_hop, impostor_shift=FLAGS.impostor_shift,
                impostor_shift_max=FLAGS.impostor_shift_max,
                impostor_other_video_fraction=FLAGS.impostor_other_video_fraction,
                drop_silent=FLAGS.drop_silent, silence_db=FLAGS.silence_db,
                drop_static=FLAGS.drop_static, static_threshold=FLAGS.static_threshold,
                seed=FLAGS.seed),
            num_workers=FLAGS.num_workers, shard_index=FLAGS.shard_index,
            num_shards=FLAGS.num_shards, num_output_shards=FLAGS.num_output_shards,
            predictor_path=FLAGS.predictor_path,
            mouth_border_fraction=None if FLAGS.reference_crop else FLAGS.mouth_border_fraction,
            audio_offsets=offsets)
    except ValueError as error:
        raise UsageError(str(error)) from None


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags()
    # TensorFlow is imported late (to write the records); keep its start-up chatter quiet
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from avprep.build import build_dataset
    from avprep.mouth_tracking import MissingModelError
    with reported(ValueError, FileNotFoundError, MissingModelError):
        summary = build_dataset(config)
    if config.audio_offsets:
        print(f"audio moved by the offsets of {FLAGS.audio_offsets}: "
              f"{len(config.audio_offsets)} videos")
    print(f"processed {summary['processed']} videos ({summary['reused']} done before): "
          f"{summary['ok']} ok, {summary['skipped']} skipped, {summary['windows']} windows")
    if summary["gathered"]:
        for split, info in summary["manifest"]["splits"].items():
            print(f"{split}: {info['videos']} videos, {info['windows']} windows "
                  f"({info['genuine']} genuine + {info['impostor']} impostor pairs), "
                  f"{len(info['shards'])} shards")
        counts = summary["manifest"]["speakers"]
        for kind in ("per_source", "per_split"):
            print(f"speakers {kind.replace('_', ' ')}: "
                  + ", ".join(f"{name} {n}" for name, n in counts[kind].items()))
        print(f"contact sheets (one face per speaker): "
              f"{os.path.join(os.path.abspath(config.output_dir), 'speakers-<split>.png')}")
        print(f"dataset: {os.path.abspath(config.output_dir)}")
    if summary["windows"] == 0 and (not summary["gathered"] or not any(
            info["windows"] for info in summary["manifest"]["splits"].values())):
        print("error: no usable window came out of the input videos", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run(main)
