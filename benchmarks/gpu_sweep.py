"""Where the GPU time of a perturbation pass goes, and which settings would buy the <1 s goal.

The H100 check (benchmarks/results/gpu_check.md) ran the shipped width-0.125 network at 2.4
TFLOP/s: its layers have 8 to 64 channels, so each pass moves far more bytes than it multiplies.
This sweep times the pieces of one batch on the device, each alone:

* ``masks``: building the perturbed inputs from the 0/1 switches (:func:`perturbed_batch`);
* ``forward``: the network on ready inputs, for batch sizes x memory layout (channels_last, the
  default, or contiguous) x precision (fp32, bf16 and fp16 autocast);
* ``forward + CUDA graph``: the best eager setting captured once and replayed
  (``torch.cuda.CUDAGraph``), which removes the per-kernel launch cost of the small layers.

Prints and writes ``OUT/gpu_sweep.md`` and ``.json``: samples/s of each, and the projected wall
seconds of 50,000 samples. ``--device cpu --batches 2 --batch-sizes 64`` is a dry run.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from twolevel import example_path
from twolevel.checkpoint import default_model_path, load_checkpoint
from twolevel.explain.explainer import explain_window
from twolevel.explain.sampling import autocast, perturbed_batch, sample_switches
from twolevel.explain.segments import segment_spectrogram
from twolevel.model import multiply_adds
from twolevel.options import precisions_on
from twolevel.predict import TwoLevelModel
from twolevel.signal import WINDOW_FRAMES

SAMPLES = 50_000


def timed(fn, device: torch.device, repeats: int) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), synchronised on CUDA."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def head(network, features):
    """``x -> (mid, emo)`` through the given convolution stack and the network's own head."""
    def forward(x):
        h = network.pool(features(x)).flatten(1)
        mid = network.midlevel(h)
        return mid, network.emotion(mid)
    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--batches", type=int, default=5, help="timed calls per setting")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = TwoLevelModel(load_checkpoint(default_model_path(), device=str(device)))
    network = model.network
    audio = model.load_audio(example_path("nebula.ogg"))
    window, _ = explain_window(audio.samples, 0.0)
    with torch.inference_mode():
        spec = network.frontend(torch.from_numpy(window)[None].to(device))[0, 0, :WINDOW_FRAMES]
    seg = segment_spectrogram(spec.cpu().numpy())
    seg_map = torch.as_tensor(seg.labels, dtype=torch.int64, device=device)
    flop = 2.0 * multiply_adds(network.config.width, trunks=network.config.trunks)
    precisions = precisions_on(device.type)  # the library's options
    rows = []

    def record(case: str, batch: int, seconds: float) -> None:
        rate = batch / seconds
        rows.append({"case": case, "batch": batch, "seconds_per_batch": seconds, "samples_per_s": rate,
                     "tflops": flop * rate / 1e12, "projected_50k_s": SAMPLES / rate})
        print(f"  {case:<40} batch {batch:>6}: {rate:>10,.0f} samples/s, {flop * rate / 1e12:6.2f} TFLOP/s, "
              f"50k in {SAMPLES / rate:6.2f} s", flush=True)

    with torch.inference_mode():
        stack_last = network.inference_features()
        stack_plain = copy.deepcopy(stack_last).to(memory_format=torch.contiguous_format)
        for batch in args.batch_sizes:
            switches = torch.from_numpy(sample_switches(batch, seg.n_segments, 0)).to(device)
            record("masks (perturbed_batch)", batch, timed(lambda: perturbed_batch(spec, seg_map, switches, 0.0),
                                                            device, args.batches))
            x = perturbed_batch(spec, seg_map, switches, 0.0)
            inputs = {"channels_last": x.contiguous(memory_format=torch.channels_last), "contiguous": x.contiguous()}
            stacks = {"channels_last": stack_last, "contiguous": stack_plain}
            for layout, stack in stacks.items():
                forward = head(network, stack)
                for name in precisions:
                    def run(forward=forward, xin=inputs[layout], name=name):
                        with autocast(device, name):
                            return forward(xin)
                    try:
                        record(f"forward {layout} {name}", batch, timed(run, device, args.batches))
                    except RuntimeError as err:  # e.g. a precision the device lacks
                        print(f"  forward {layout} {name} batch {batch}: {str(err).splitlines()[0]}", flush=True)
        forwards = [r for r in rows if r["case"].startswith("forward")]
        best = max(forwards, key=lambda r: r["samples_per_s"]) if forwards else None
        if best is not None and device.type == "cuda":
            _, layout, name = best["case"].split()
            batch = best["batch"]
            switches = torch.from_numpy(sample_switches(batch, seg.n_segments, 0)).to(device)
            static_x = perturbed_batch(spec, seg_map, switches, 0.0).contiguous(
                memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
            forward = head(network, stack_last if layout == "channels_last" else stack_plain)

            def eager():
                with autocast(device, name):
                    return forward(static_x)
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    eager()
            torch.cuda.current_stream(device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    eager()
                record(f"forward {layout} {name} + CUDA graph", batch, timed(graph.replay, device, args.batches))
            except RuntimeError as err:
                print(f"  CUDA graph capture failed: {str(err).splitlines()[0]}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
            "width": network.config.width, "segments": seg.n_segments}
    (out / "gpu_sweep.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    lines = [f"Device: {info['device']}, torch {info['torch']}, shipped width {info['width']:g}", "",
             "| case | batch | samples/s | TFLOP/s | 50,000 in s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['batch']} | {r['samples_per_s']:,.0f} | {r['tflops']:.2f} | {r['projected_50k_s']:.2f} |"
              for r in rows]
    (out / "gpu_sweep.md").write_text("\n".join(lines) + "\n")
    print(f"written: {out / 'gpu_sweep.md'}")


if __name__ == "__main__":
    main()
