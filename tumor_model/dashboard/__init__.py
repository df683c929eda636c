"""The Streamlit dashboard's package side; the pages (pages/*.py) only read widgets and render.

- `places`: where the artifacts and the dataset are (the sidebar's choice, else the environment,
  else the shipped model / the dataset found under ../shared/data or ./data), the page preamble,
  the cached artifact reader, and the two runtime fixes (running a page through the router,
  handing memory back).
- `tables`: metric formatting and the metrics.json tables several pages show (protocols,
  results, folds, how the model travels).
- `card`: the model and its card (Overview facts, headline, the sidebar's model panel, an
  adapted model's own facts).
- `evaluation`, `history`, `dataset`, `predict`, `site`: the tables and logic of the Evaluation,
  Training, Dataset, Predict and "Your scans" pages; `volume`: the Predict page's volume view;
  `download`: the annotated overlay PNG.
- `figures`: the plotly figures.
"""
