"""The paper's own numbers, quoted for side-by-side tables (never used in computation)."""

# Table 1: conventional training, e in % (training, test) and training time in minutes on an A10,
# keyed by the hidden width L of 1681-L-L-L-128-9 (0.6, 1.5, 4 and 12 million weights).
TABLE1 = {256: (0.80, 1.04, 1.5), 512: (0.40, 0.60, 3.0), 1024: (0.26, 0.43, 6.0), 2048: (0.26, 0.45, 16.0)}
# Table 2: first-derivative training, e in % (training, test).
TABLE2 = {256: (0.16, 0.17), 512: (0.11, 0.12), 1024: (0.067, 0.075), 2048: (0.065, 0.072)}
WEIGHTS_MILLIONS = {256: 0.6, 512: 1.5, 1024: 4, 2048: 12}

EFFECTIVE_RESOLUTION_LINES = 28  # section 3.3.2
OUTPUT_STD = 0.3  # D_i, section 3.4: "all roughly equal to 0.3"
ROTATION_D2_NORM = 40  # section 5.2: avg ||d2 I / d nu_i d nu_j||, i, j <= 3
GRAD_NORM_N1 = 0.71  # section 3.6: ||grad N_1|| of the conventionally trained 12M network
