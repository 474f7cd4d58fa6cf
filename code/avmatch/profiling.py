"""Where a step's time goes: TensorFlow's profiler around a few calls, and the ops it recorded
summed by op type.

The trace (an .xplane.pb under LOGDIR/plugins/profile/<run>/) opens in TensorBoard's profile
tab; `op_table` reads the same file without TensorBoard. TensorFlow records each executed op
on the host plane as an event "<scope>/<name>:<OpType>" on a tf_Compute thread; ops run on
two such threads at once on a 2-core machine, so the op times add up to more than the wall
time. XLA-compiled functions (the fused batch norm + PReLU of training) record their kernels
by HLO name ("multiply_bitcast_fusion", "wrapped_reduce-window", ...) on those threads and
on Eigen's worker threads; they are summed as one op type, XLA_OP_TYPE.
"""
import collections
import glob
import os

import tensorflow as tf

COMPUTE_LINE_PREFIX = "tf_Compute"
XLA_LINE_PREFIXES = (COMPUTE_LINE_PREFIX, "tf_numa")
XLA_OP_TYPE = "XLA kernels"
# events that wrap an XLA executable's kernels rather than being one
_XLA_WRAPPERS = ("BlockUntilReady", "ParallelFor")


def profile_calls(fn, logdir, calls):
    """Runs fn() `calls` times under the profiler, writing the trace into `logdir`; returns
    the path of the trace file (.xplane.pb)."""
    before = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(calls):
            fn()
    finally:
        tf.profiler.experimental.stop()
    written = set(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)) - before
    if not written:
        raise RuntimeError(f"the profiler wrote no trace into {logdir}")
    return max(written, key=os.path.getmtime)


def op_events(xplane_path):
    """(op name, op type, duration in seconds) of every op event of a trace file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as handle:
        space.ParseFromString(handle.read())
    for plane in space.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith(XLA_LINE_PREFIXES):
                continue
            for event in line.events:
                name = metadata[event.metadata_id].name
                # executor bookkeeping ("ExecutorState::Process") wraps the ops: not an op
                if "::" in name or name in _XLA_WRAPPERS:
                    continue
                if ":" in name:
                    if line.name.startswith(COMPUTE_LINE_PREFIX):
                        op_name, op_type = name.rsplit(":", 1)
                        yield op_name, op_type, event.duration_ps * 1e-12
                else:
                    yield name, XLA_OP_TYPE, event.duration_ps * 1e-12


def direction(op_name, op_type=""):
    """"backward" for ops the gradient tape made, "forward" for the others; "both" for XLA
    kernels, whose names do not say."""
    if op_type == XLA_OP_TYPE:
        return "both"
    return "backward" if "gradient_tape/" in op_name else "forward"


def op_table(xplane_path, calls):
    """Op time per call, summed by (op type, direction), largest first.

    Returns a list of dicts: op_type, direction, ms_per_call, events_per_call, share (of
    the total op time).
    """
    seconds, counts = collections.Counter(), collections.Counter()
    for op_name, op_type, duration in op_events(xplane_path):
        key = (op_type, direction(op_name, op_type))
        seconds[key] += duration
        counts[key] += 1
    total = sum(seconds.values()) or 1.0
    return [{"op_type": op_type, "direction": way, "ms_per_call": 1e3 * value / calls,
             "events_per_call": counts[op_type, way] / calls, "share": value / total}
            for (op_type, way), value in seconds.most_common()]


def format_op_table(rows, top=15):
    """Printable table of op_table's first `top` rows and the total op time per call."""
    lines = [f"{'op type':<34} {'pass':<9} {'ms/call':>9} {'ops/call':>9} {'share':>7}"]
    for row in rows[:top]:
        lines.append(f"{row['op_type'][:34]:<34} {row['direction']:<9} "
                     f"{row['ms_per_call']:>9.1f} {row['events_per_call']:>9.0f} "
                     f"{100 * row['share']:>6.1f}%")
    total = sum(row["ms_per_call"] for row in rows)
    ops = sum(row["events_per_call"] for row in rows)
    lines.append(f"{'all ops':<34} {'':<9} {total:>9.1f} {ops:>9.0f} {100.0:>6.1f}%")
    return "\n".join(lines)
