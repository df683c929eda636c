"""The Streamlit dashboard's package side; the pages (pages/*.py) only read widgets and render.

- `places`: where the artifacts and the dataset are, the page preamble, the cached artifact
  reader, and the two runtime fixes (running a page through the router, handing memory back).
- `tables`: DataFrames and text the pages show (metric formatting, protocols, model facts,
  threshold metrics through `tumor_model.evaluate`, the training history).
- `dataset`: the Dataset page's tables (class counts, image rows, the duplicate audit).
- `figures`: the plotly figures.
"""
