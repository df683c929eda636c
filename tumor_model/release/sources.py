"""What the model card says about a data source beyond its figures: what it is, where it comes
from and its licence, keyed by the source's folder name (`training.data.source_of`). A source not
listed here is named as it is, with its licence "not recorded"."""

from __future__ import annotations

NON_COMMERCIAL = "tcga-lgg"  # a model trained on it is for non-commercial research only

SOURCES = {
    "brain-tumor-dataset": {
        "what": 'Kaggle "Brian Tumor Dataset" (preetviradiya): 2-D brain-MRI slices of both '
        "classes from several web sources, with many exact and near duplicates",
        "licence": "as listed on its Kaggle page (not recorded in this repository; check it "
        "before any use beyond research)",
    },
    "figshare-cheng-t1ce": {
        "what": "Figshare dataset 1512427 (Cheng et al., PLoS ONE 2015): contrast-enhanced T1 "
        "slices of meningioma, glioma and pituitary tumours, tumours only, with tumour boxes; "
        "slices that copy a Kaggle image left out",
        "licence": "CC BY 4.0",
    },
    "oasis-healthy": {
        "what": "OASIS (Open Access Series of Imaging Studies) via Kaggle's Alzheimer MRI set: "
        "skull-stripped axial T1 slices of adults without dementia, healthy only",
        "licence": "OASIS data use terms: research use with attribution",
    },
    "tcga-lgg": {
        "what": "TCGA-LGG (The Cancer Imaging Archive) as converted by Buda et al. 2019: axial "
        "T1, T1 post-contrast and FLAIR slices of 110 lower-grade glioma patients, both classes "
        "from the same scanners",
        "licence": "CC BY-NC-SA 4.0: research, non-commercial",
    },
}


def about(source: str) -> dict:
    """{"what", "licence"} of a source (its name and "not recorded" when unknown)."""
    return SOURCES.get(source, {"what": source, "licence": "not recorded"})
