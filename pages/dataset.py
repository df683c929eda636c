"""Dataset: class balance, a sample grid, size/format distributions and the duplicate audit."""

import streamlit as st

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES
from tumor_model.dashboard import dataset, figures, places

ART = places.page()
GRID, COLUMNS = 16, 8
preview = st.cache_data(places.load_preview, show_spinner=False, max_entries=512)
split_images = st.cache_data(dataset.split_images, show_spinner=False, max_entries=4)


def show_images(frame, columns: int = COLUMNS, side: int = 192) -> None:
    cols = st.columns(columns)
    for i, row in enumerate(frame.itertuples(index=False)):
        with cols[i % columns]:
            pixels, problem = preview(row.image, side)
            if pixels is None:
                st.caption(f"Cannot show {row.caption}: {problem}")
            else:
                st.image(pixels, caption=row.caption, width="stretch")


def balance(split) -> None:
    st.header("Class balance")
    counts = dataset.class_counts(split)
    st.plotly_chart(figures.class_balance_figure(counts), key="dataset_balance")
    table = counts.pivot(index="split", columns="class", values="count").loc[counts.split.unique()]
    st.dataframe(table, key="dataset_counts")


def reshuffle() -> None:
    st.session_state["dataset_seed"] = st.session_state.get("dataset_seed", 0) + 1


def sample_grid(split, samples, root) -> None:
    st.header("Sample images")
    if root and split is not None:
        frame = split_images(split, root)
        st.caption(f"Random images from the dataset at `{root}`.")
    elif samples is not None:
        frame = dataset.sample_images(samples, ART)
        st.caption(
            "Shipped thumbnails (artifacts/samples/): set the dataset folder in the "
            "sidebar to sample the whole dataset."
        )
    else:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    choice = left.radio("Class", ["all", *CLASS_NAMES], horizontal=True, key="dataset_class")
    right.button(
        "Reshuffle", key="dataset_reshuffle", on_click=reshuffle, icon=":material/shuffle:"
    )
    rows = dataset.sample_rows(frame, GRID, st.session_state.get("dataset_seed", 0), choice)
    show_images(rows)


def distributions(summary) -> None:
    st.header("Image properties per class")
    st.caption(
        "**This is where the shortcut shows:** the two classes differ in file format, "
        "colour mode, image size and file size, so a model can separate them without "
        "looking at anatomy. The Overview's shortcut check measures how much accuracy "
        "depends on such cues."
    )
    st.plotly_chart(figures.size_figure(summary), key="dataset_sizes")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figures.category_figure(summary, "formats"), key="dataset_formats")
    with right:
        st.plotly_chart(figures.category_figure(summary, "modes"), key="dataset_modes")
    bad = summary.get("unreadable") or []
    st.caption(
        f"{summary.get('images', '?')} readable images; {len(bad)} unreadable files skipped."
    )


def duplicates(summary, root) -> None:
    st.header("Duplicate audit")
    st.caption(
        "Exact copies share a sha256; near copies have nearly identical 32 px greyscale "
        "thumbnails. Both are grouped, and the default split keeps each group in one "
        "split. Cross-class groups hold the same picture under both labels."
    )
    numbers = list(dataset.duplicate_numbers(summary).items())
    for start in range(0, len(numbers), 4):
        for col, (label, value) in zip(st.columns(4), numbers[start : start + 4], strict=False):
            col.metric(label, value)
    examples = dataset.duplicate_examples(summary)
    if not examples:
        return
    st.subheader("Example groups")
    for i, group in enumerate(examples, start=1):
        frame = dataset.group_images(group, root)
        shown = min(len(group), 4) if root else len(group)
        st.markdown(f"**Group {i}**: {shown} of the {len(group)} files listed in the audit")
        if root:
            show_images(frame.head(4), columns=4, side=256)
        else:
            st.dataframe(frame[["caption", "path"]], hide_index=True, key=f"dataset_group_{i}")


st.title("Dataset")
root = places.session_data_dir(st.session_state)
split, summary = places.load(artifacts.SPLIT), places.load(artifacts.SUMMARY)
samples = None if root else places.load(artifacts.SAMPLES_CSV)
if split is not None:
    balance(split)
sample_grid(split, samples, root)
if summary is not None:
    distributions(summary)
    duplicates(summary, root)
