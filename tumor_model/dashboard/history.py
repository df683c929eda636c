"""The Training page's tables (no Streamlit here): history.csv in training order, the chosen
epoch and a summary per phase."""

from __future__ import annotations

import numpy as np
import pandas as pd


def history_steps(history: pd.DataFrame) -> pd.DataFrame:
    """History in training order with a global 1-based 'step' across phases."""
    order = {"head": 0, "fine_tune": 1}
    frame = history.assign(_o=history.phase.map(order).fillna(2))
    frame = frame.sort_values(["_o", "epoch"], kind="stable").drop(columns="_o")
    return frame.reset_index(drop=True).assign(step=lambda d: np.arange(1, len(d) + 1))


def chosen_epoch(history: pd.DataFrame) -> pd.Series:
    """The row with the lowest validation loss (what early stopping keeps)."""
    frame = history_steps(history)
    return frame.loc[frame.val_loss.idxmin()]


def phase_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Per phase: epochs, best validation loss, its epoch, seconds."""
    rows = []
    for phase, part in history_steps(history).groupby("phase", sort=False):
        best = part.loc[part.val_loss.idxmin()]
        rows.append(
            {
                "phase": phase,
                "epochs": len(part),
                "best val_loss": best.val_loss,
                "at epoch": int(best.epoch),
                "val_accuracy there": best.val_accuracy,
                "val_auc there": best.val_auc,
                "seconds": part.seconds.sum(),
            }
        )
    return pd.DataFrame(rows)
