"""Training: the objectives (`losses`), one optimisation step each (`steps`), the Fader loop
with validation and exact resume (`trainer`), the judge classifier (`classifier`), and their
hyperparameters (`config`)."""
