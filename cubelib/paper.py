"""The paper's own numbers, quoted for side-by-side tables (never used in computation)."""

# Table 1: conventional training, e in % (training, test) and training time in minutes on an A10,
# keyed by the hidden width L of 1681-L-L-L-128-9 (0.6, 1.5, 4 and 12 million weights).
TABLE1 = {256: (0.80, 1.04, 1.5), 512: (0.40, 0.60, 3.0), 1024: (0.26, 0.43, 6.0), 2048: (0.26, 0.45, 16.0)}
# Table 2: first-derivative training, e in % (training, test).
TABLE2 = {256: (0.16, 0.17), 512: (0.11, 0.12), 1024: (0.067, 0.075), 2048: (0.065, 0.072)}
WEIGHTS_MILLIONS = {256: 0.6, 512: 1.5, 1024: 4, 2048: 12}

EFFECTIVE_RESOLUTION_LINES = 28  # section 3.3.2
VISIBLE_WIDTH_PIXELS = {"nearest": 11, "middle": 10, "farthest": 9}  # section 3.4, the cube at three depths
OUTPUT_STD = 0.3  # D_i, section 3.4: "all roughly equal to 0.3"
ROTATION_D2_NORM = 40  # section 5.2: avg ||d2 I / d nu_i d nu_j||, i, j <= 3
GRAD_NORM_N1 = 0.71  # section 3.6: ||grad N_1|| of the conventionally trained 12M network

# Section 4.6, keyed by L as above; "deep" is the 20M network of the last columns (L = 2048,
# five hidden layers of 2048, 84 batches, 10 % more epochs, + R_high).
# Table 3: first-order robust training, test (e, v_max) in %.
TABLE3 = {256: (9.95, 21.1), 512: (5.51, 17.3), 1024: (3.12, 13.3), 2048: (2.24, 11.6), "deep": (1.54, 7.50)}
# Table 4: the same + one epoch of E0 + E1 ("trade-off adjusted"): (training, test) for e, v_max, v_sen, v_inv.
TABLE4 = {
    256: {"e": (3.66, 3.69), "v_max": (23.4, 23.5), "v_sen": (23.4, 23.4), "v_inv": (18.2, 18.2)},
    512: {"e": (1.30, 1.33), "v_max": (18.6, 18.7), "v_sen": (18.6, 18.7), "v_inv": (15.3, 15.4)},
    1024: {"e": (0.73, 0.77), "v_max": (13.9, 14.0), "v_sen": (13.9, 14.0), "v_inv": (12.3, 12.4)},
    2048: {"e": (0.54, 0.59), "v_max": (12.0, 12.1), "v_sen": (12.0, 12.1), "v_inv": (10.9, 11.0)},
    "deep": {"e": (0.37, 0.46), "v_max": (7.68, 7.92), "v_sen": (7.68, 7.90), "v_inv": (7.32, 7.53)},
}
# Table 5: Gaussian augmentation with sigma = 0.055, clean images, same layout as Table 4.
TABLE5 = {
    256: {"e": (1.87, 2.17), "v_max": (24.6, 24.7), "v_sen": (24.3, 24.3), "v_inv": (18.6, 18.7)},
    512: {"e": (1.61, 1.93), "v_max": (21.0, 21.1), "v_sen": (20.3, 20.4), "v_inv": (16.9, 17.0)},
    1024: {"e": (1.65, 2.47), "v_max": (18.0, 18.3), "v_sen": (16.5, 17.0), "v_inv": (15.2, 15.3)},
    2048: {"e": (2.31, 3.98), "v_max": (19.1, 19.6), "v_sen": (12.6, 15.6), "v_inv": (16.0, 15.6)},
    "deep": {"e": (3.42, 4.91), "v_max": (24.3, 25.1), "v_sen": (8.20, 15.7), "v_inv": (18.0, 16.8)},
}
# Figs. 6-7 (4M network): the best Gaussian augmentation, and the best Jacobian regularisation (§4.6.3)
BEST_GAUSSIAN_SIGMA = 0.095
BEST_GAUSSIAN_V_MAX = 17.0
GAUSSIAN_INVARIANCE_TAKES_OVER = 0.1  # "starting at sigma = 0.1, invariance attacks become dominant"
BEST_JACOBIAN_V_MAX = 18.0
GAUSSIAN_SWEEP_MAX = 0.17  # Fig. 6: the largest sigma of the paper's Gaussian sweep
# §7: "both [kinds of robustness] increase by a factor of 2.3 compared to Gaussian augmentation
# and Jacobian regularization" (its 20M robust network against its best 4M networks)
ROBUST_GAIN_OVER_BASELINES = 2.3
GRADIENT_COSINE = 0.7  # §4.6.1: average scalar product of two normalised network gradients

# Section 5, keyed by L as above.
# Table 6: second-derivative training, e in % (training, test).
TABLE6 = {256: (0.111, 0.112), 512: (0.044, 0.046), 1024: (0.017, 0.021), 2048: (0.013, 0.018)}
ACCURACY_GAIN_VS_CONVENTIONAL = 25  # §5.2: "increased by a factor of 25 compared to standard training"
ACCURACY_GAIN_VS_FIRST = 4  # "and by a factor of 4 compared to first-order training"
# Table 7: second-order robust training, test (e, v_max) in %.
TABLE7 = {256: (22.9, 20.4), 512: (14.9, 17.0), 1024: (8.42, 13.0), 2048: (6.21, 11.2), "deep": (4.71, 7.20)}
# Table 8: the same + one epoch of E0 + E1: (training, test) for e, v_max, v_sen, v_inv.
TABLE8 = {
    256: {"e": (12.7, 12.7), "v_max": (22.4, 22.4), "v_sen": (20.7, 20.7), "v_inv": (19.6, 19.6)},
    512: {"e": (5.59, 5.62), "v_max": (18.8, 18.9), "v_sen": (18.4, 18.5), "v_inv": (16.3, 16.4)},
    1024: {"e": (1.90, 1.92), "v_max": (14.1, 14.2), "v_sen": (14.1, 14.1), "v_inv": (12.7, 12.7)},
    2048: {"e": (1.20, 1.23), "v_max": (12.0, 12.1), "v_sen": (12.0, 12.1), "v_inv": (11.0, 11.1)},
    "deep": {"e": (0.69, 0.73), "v_max": (7.50, 7.58), "v_sen": (7.48, 7.55), "v_inv": (7.22, 7.29)},
}
ROTATION_D2_TARGET_NORM = 1  # §5.2: n_ij = avg ||d2O|| of the rotation pairs "are close to 1"
SECOND_ORDER_SHARE_OF_CORRECTION = 1 / 20  # §5.4: d2O contributes "up to 1/20 of the correction" (sigma <= 0.25)
NOISE_MANIFOLD_DIAMETER = 10  # §5.4: at sigma = 0.25 the noise norm is ~10, "roughly the diameter of the manifold"
