"""Level 2 of the explanation: which spectrogram segments drive a mid-level (or emotion) output.

>>> from twolevel.explain import explain, Explanation
>>> exp = explain(model, model.load_audio("clip.mp3"), target="articulation", samples=50_000)
>>> exp = explain(model, audio, ExplainOptions(target="energy", samples=5000, seed=1))
>>> exp.selection.positive, exp.to_dict()["surrogate"]["r2"]["articulation"]
>>> exp.save("out/")            # report.html, PNGs, audio, explanation.json
"""
from ..options import MAX_SAMPLES, ExplainOptions
from .explainer import explain, explain_window, minimum_samples, repeats_summary
from .explanation import Explanation
from .faithfulness import deletion_check
from .resynthesis import Resynthesis, griffin_lim, linear_mask, resynthesise, spectral_convergence
from .sampling import run_perturbations, sample_switches, warm_up
from .segments import Segmentation, segment_spectrogram
from .selection import Selection, jaccard, select_segments, selection_stability
from .surrogate import SurrogateFit, cosine_distance_to_ones, fit_surrogate, lime_kernel

__all__ = [
    "Explanation", "ExplainOptions", "MAX_SAMPLES", "Resynthesis", "Segmentation", "Selection", "SurrogateFit",
    "cosine_distance_to_ones", "deletion_check", "explain", "explain_window",
    "fit_surrogate", "griffin_lim", "jaccard", "lime_kernel", "linear_mask", "minimum_samples", "repeats_summary",
    "resynthesise", "run_perturbations", "sample_switches", "segment_spectrogram", "select_segments",
    "selection_stability", "spectral_convergence", "warm_up",
]
