# Site only (site/cells/theta_strip.py, added after the explorer by site/build.py): what a static
# page can show of the explorer. Each column is one slider setting: the letter F with the
# sampling grid that theta lays on it (top) and the output the sampler reads there (bottom),
# drawn by the explorer's own render_theta.
import matplotlib.pyplot as plt

from stnlib.images import letter_f
from stnlib.widgets import render_theta, theta_from_controls

settings = [  # (slider setting, theta_from_controls keywords)
    ("identity", {}),
    ("tx = 0.5", {"tx": 0.5}),
    ("scale x = scale y = 0.5", {"scale_x": 0.5, "scale_y": 0.5}),
    ("rotation = +30°", {"rotation_deg": 30.0}),
    ("shear = 0.5", {"shear": 0.5}),
    ("scale x = -1 (mirror)", {"scale_x": -1.0}),
]
letter = letter_f((28, 28))
fig, axes = plt.subplots(2, len(settings), figsize=(2.1 * len(settings), 4.6))
for (label, controls), (ax_in, ax_out) in zip(settings, axes.T):
    render_theta(letter, theta_from_controls(**controls), ax_in=ax_in, ax_out=ax_out, align_corners=False, titles=False)
    ax_in.set_title(label, fontsize=9)
axes[0, 0].set_ylabel("input + grid", fontsize=9)
axes[1, 0].set_ylabel("output", fontsize=9)
fig.tight_layout()
plt.show()
