"""Reading inputs: images by content, DICOM, DICOM series, NIfTI volumes, zips in memory."""
