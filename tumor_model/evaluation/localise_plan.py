"""What the localisation benchmark (`neuroscan localise`, evaluation.localise) measures and how
it chooses the default map: its data, sample sizes, candidate layers and rule. Constants only,
so that the command line declares its flags without importing the benchmark."""

from tumor_model.serving.maps import LATENCY_BUDGET_MS, TOLERANCE

# The box sources (`--boxes`, repeatable): Figshare's T1ce boxes, and tcga-lgg's files.csv (its
# tumour rows with a box, three sequences, patient ids). A source is named by its CSV's folder.
DEFAULT_BOXES = (
    "../shared/data/figshare-cheng-t1ce/boxes.csv",
    "../shared/data/tcga-lgg/files.csv",
)
BOX_COLUMNS = ("file", "x_center", "y_center", "width", "height")
SEED = 20261202
# Sample sizes per box source and per half, so that every source is in both halves (a full run
# on the two default sources: about 25 min at nice 10 on the 2-core machine, unloaded).
PER_HALF, SCORECAM_PER_HALF, SMOOTHGRAD_PER_HALF, LATENCY_N = 150, 10, 20, 10
SAMPLES_ARE = "per box source and per half (latency-n: per gradient CAM, pooled)"
HALVES_BY = "patient_id where a source has it (a patient's slices all in one half), else file"
RULE = (
    f"among the configurations with median latency <= {LATENCY_BUDGET_MS:.0f} ms, the highest "
    f"pointing game at {TOLERANCE} px; ties by the higher mean energy ratio, then the lower "
    "latency (none within budget: the same rule over all)"
)

# Candidate target layers of MobileNetV2 (224 px: 7x7, 14x14, 28x28, 56x56); those missing from a
# model are left out. A tuple = several layers fused as Layer-CAM does (serving.explain).
LAYER_SETS = (
    ("out_relu",),
    ("block_16_project_BN",),
    ("block_13_expand_relu",),
    ("block_12_add",),
    ("block_6_expand_relu",),
    ("block_5_add",),
    ("block_3_expand_relu",),
    ("block_2_add",),
    ("out_relu", "block_13_expand_relu"),
    ("out_relu", "block_13_expand_relu", "block_6_expand_relu"),
    ("block_13_expand_relu", "block_6_expand_relu"),
    ("block_13_expand_relu", "block_6_expand_relu", "block_3_expand_relu"),
)
GRADIENT_METHODS = ("gradcam", "gradcam++", "layercam")  # one compiled pass serves them all
SCORECAM_LAYERS = (("out_relu",), ("block_13_expand_relu",), ("block_6_expand_relu",))
