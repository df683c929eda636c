"""Dataset: class balance, a sample grid, size/format distributions and the duplicate audit."""

import streamlit as st

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.dashboard import dataset, figures, places, tables

ART = places.page()
GRID, COLUMNS = 16, 8
GROUP_PAGE = 16  # images of a duplicate group per page
preview = st.cache_data(places.load_preview, show_spinner=False, max_entries=512)
split_images = st.cache_data(dataset.split_images, show_spinner=False, max_entries=4)
duplicate_groups = st.cache_data(dataset.duplicate_groups, show_spinner=False, max_entries=4)


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
        st.caption(f"Random images from the dataset at `{places.shown_path(root)}`.")
    elif samples is not None:
        frame = dataset.sample_images(samples, ART)
        st.caption(
            "Shipped thumbnails (artifacts/samples/): set the dataset folder in the "
            "sidebar to sample the whole dataset."
        )
    else:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    choice = left.radio(
        "Class",
        ["all", *CLASS_NAMES],
        horizontal=True,
        key="dataset_class",
        format_func=lambda c: DISPLAY_NAMES.get(c, c),
    )
    right.button(
        "Reshuffle", key="dataset_reshuffle", on_click=reshuffle, icon=":material/shuffle:"
    )
    rows = dataset.sample_rows(frame, GRID, st.session_state.get("dataset_seed", 0), choice)
    show_images(rows)


def distributions(summary, split) -> None:
    st.header("Image properties per class")
    statements = dataset.property_statements(summary, split)
    if statements:
        st.markdown(
            "Computed from the dataset summary: where the classes differ, a model can separate "
            "them without looking at anatomy (the Overview's shortcut check measures how much "
            "accuracy depends on format and canvas size).\n\n"
            + "\n".join(f"- {line}" for line in statements)
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


def duplicates(summary, split, root) -> None:
    st.header("Duplicate audit")
    st.markdown(
        "Exact copies share a sha256 (byte-identical files); near copies have nearly identical "
        "32 px greyscale thumbnails. Both are put in one **duplicate group**, and the default "
        "split keeps each group in one split.\n"
        "- **Cross-class group**: a group (exact or near copies) that holds files of both "
        "classes, i.e. the same picture labelled tumour and no tumour.\n"
        "- **Exact cross-class group**: the stricter case, one byte-identical file stored under "
        "both labels."
    )
    numbers = list(dataset.duplicate_numbers(summary).items())
    for start in range(0, len(numbers), 4):
        for col, (label, value) in zip(st.columns(4), numbers[start : start + 4], strict=False):
            col.metric(label, value)
    if split is None or "group" not in split:
        return
    browse_groups(split, root)


def browse_groups(split, root) -> None:
    groups = duplicate_groups(split)
    st.subheader(f"Browse the duplicate groups ({len(groups)} with more than one file)")
    if groups.empty:
        st.caption("No duplicate group holds more than one file.")
        return
    st.caption(
        "Kinds: "
        + "; ".join(f"**{k}**: {v}" for k, v in dataset.GROUP_KINDS.items())
        + f". Cross-class: {int(groups.cross_class.sum())}, exact cross-class: "
        f"{int(groups.exact_cross_class.sum())}."
    )
    left, right = st.columns([1, 2])
    kind = left.selectbox(
        "Show",
        ["all", "cross-class", "exact cross-class", *dataset.GROUP_KINDS],
        key="dataset_kind",
    )
    chosen = {
        "all": groups,
        "cross-class": groups[groups.cross_class],
        "exact cross-class": groups[groups.exact_cross_class],
    }.get(kind, groups[groups.kind == kind])
    if chosen.empty:
        right.info(f"No {kind} group in this dataset.")
        return
    labels = {
        int(g.group): f"group {g.group}: {g.files} files, {g.kind}, {g.classes}, in {g.splits}"
        for g in chosen.itertuples(index=False)
    }
    group = right.selectbox(
        f"Group ({len(labels)}, largest first)",
        list(labels),
        format_func=labels.get,
        key="dataset_group",
    )
    if group not in labels:
        group = next(iter(labels))
    files = dataset.group_files(split, group, root)
    if not root:
        st.dataframe(files[["caption", "path"]], hide_index=True, key="dataset_group_files")
        st.caption("Set the dataset folder in the sidebar to see the images.")
        return
    pages = max(1, -(-len(files) // GROUP_PAGE))
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages})", 1, pages, key=f"dataset_group_page_{group}")
    part = tables.page_of(files, page, GROUP_PAGE)
    first = (min(page, pages) - 1) * GROUP_PAGE
    st.caption(f"Files {first + 1}-{first + len(part)} of {len(files)} in group {group}.")
    show_images(part, columns=COLUMNS, side=192)


st.title("Dataset")
root = places.session_data_dir(st.session_state)
split, summary = places.load(artifacts.SPLIT), places.load(artifacts.SUMMARY)
samples = None if root else places.load(artifacts.SAMPLES_CSV)
if split is not None:
    balance(split)
sources = dataset.source_table(summary)
if sources is not None:
    st.header("Sources")
    st.dataframe(sources, hide_index=True, key="dataset_sources")
    if (sources["one class only"] == "yes").any():
        st.caption(
            "A source with one class only: its look alone tells the label, so figures on it "
            "measured with it in training overstate what the model learnt; the "
            "leave-one-source-out rows on the Overview hold each source out."
        )
sample_grid(split, samples, root)
if summary is not None:
    distributions(summary, split)
    duplicates(summary, split, root)
