"""What the volume rule's check (`neuroscan volume-rule`, evaluation.volume_rule) measures: the
synthetic volumes' shape, the RUN values compared, sample sizes and seed, and the caveat recorded
with it. Constants only, so that the command line declares its flags without importing the check."""

SLICES, TUMOUR_RUN = 24, (3, 10)  # slices per synthetic volume; tumour run length bounds
RUNS = (1, 2, 3, 4, 5)  # the RUN values compared
VOLUMES, END_TO_END, SEED = 2000, 10, 0  # per class and split; test volumes through NIfTI; seed
CAVEAT = (
    "Stacked slices come from different patients, unlike a real volume's neighbours: this checks "
    "the rule's logic, it is no clinical validation"
)
