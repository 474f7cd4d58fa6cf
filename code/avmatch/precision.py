"""Numeric precision of the towers: float32, or bfloat16 compute with float32 weights.

"bfloat16" builds the towers under Keras' "mixed_bfloat16" policy: convolutions, pooling and
activations run in bfloat16 while the weights (and so the optimiser's updates and the
checkpoints) stay float32; batch norm's statistics, the embeddings, the distances and the
loss are float32 (layers.BatchNorm and tower.Tower cast). A checkpoint trained in one
precision loads in the other. "auto" picks bfloat16 where the hardware computes it natively:
a CPU that reports avx512_bf16 or amx_bf16, or a GPU of compute capability 8.0 or newer.
"""
PRECISIONS = ("float32", "bfloat16", "auto")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags (a set of str; empty where /proc/cpuinfo is not readable)."""
    try:
        with open(cpuinfo_path) as handle:
            lines = handle.readlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines
                 if line.startswith("flags")), set())


def gpu_has_bfloat16():
    """True when a visible GPU has compute capability 8.0 or newer (Ampere on)."""
    import tensorflow as tf

    for device in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(device).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return True
    return False


def resolve(precision, flags=None):
    """"float32" or "bfloat16" for a PRECISIONS name; flags: the CPU flags (cpu_flags() when
    None). ValueError for an unknown name."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    flags = cpu_flags() if flags is None else flags
    native = any(flag in flags for flag in BF16_CPU_FLAGS) or gpu_has_bfloat16()
    return "bfloat16" if native else "float32"


def dtype_policy(precision):
    """The Keras dtype policy name the towers are built with for a resolved precision."""
    return "mixed_bfloat16" if resolve(precision) == "bfloat16" else "float32"
