"""The plane: one object that owns a control CTA (on a GPU or the simulated device)."""
