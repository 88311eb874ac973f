"""Pillow peer of `npm run bench -- data` (tools/bench/data.ts starts it; not meant to be run alone).

Does the same work per image as libs/data's `preprocessImage`: decode, EXIF orientation, alpha
flattened onto black, greyscale, centre-crop to square (shorter side scaled to the target, longer
side cropped around the centre) and a Lanczos (a = 3) resize to `size` x `size`, 8-bit grey bytes out.

Talks JSON lines: one request per line on stdin, one answer per line on stdout, so that data.ts can
interleave its own repeats with these (A B A B ...) in one invocation. Requests:

  {"cmd": "init", "files": [...]}                        -> versions
  {"cmd": "run", "size": 64, "mode": "single"|"parallel", "workers": 2, "op": "pipeline"|"decode",
   "files": [...] (optional; default: the init files)}
                                                          -> {"images", "seconds", "cpuSeconds"}
  {"cmd": "dump", "size": 64, "files": [...], "dir": d}   -> writes d/<i>.raw (size*size bytes each)
  {"cmd": "quit"}
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.pool
import os
import sys
import time

import PIL
from PIL import Image, ImageOps, features

LANCZOS = Image.Resampling.LANCZOS
ORIENTATION_TAG = 0x0112


def preprocess(path: str, size: int) -> bytes:
    """Pillow's version of libs/data `preprocessImage(bytes, { imageSize: size, degradeToPixels: null })`."""
    with Image.open(path) as opened:
        opened.load()  # decode fully; Pillow raises on truncated data by default, as sharp's failOn: 'truncated'
        im: Image.Image = opened
        if im.getexif().get(ORIENTATION_TAG, 1) != 1:  # sharp .rotate(): apply EXIF orientation
            im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")  # sharp .flatten({ background: black })
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
        if im.mode.startswith("I;16") or im.mode == "I":
            im = im.convert("I").point(lambda v: v * (1 / 256))  # libvips scales 16-bit to 8 the same way
        if im.mode != "L":
            im = im.convert("L")  # sharp .toColourspace('b-w')
        width, height = im.size
        side = min(width, height)
        left = (width - side) / 2
        top = (height - side) / 2
        # fit: 'cover', position: 'centre' in one step: resample the centred square box to size x size.
        # Pillow returns a copy when size and box are the whole image, as sharp skips the resize.
        im = im.resize((size, size), LANCZOS, box=(left, top, left + side, top + side))
        return im.tobytes()


def decode_only(path: str, _size: int) -> bytes:
    """Diagnostic: PNG decode to raw pixels, nothing else."""
    with Image.open(path) as im:
        im.load()
        return im.tobytes()


def _pipeline_task(args: tuple[str, int]) -> bytes:
    return preprocess(*args)


def _decode_task(args: tuple[str, int]) -> bytes:
    return decode_only(*args)


def _children_cpu(pool: multiprocessing.pool.Pool) -> float:
    """User + system CPU seconds of the pool's live worker processes (from /proc; they are not reaped yet)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in pool._pool:  # noqa: SLF001 - the workers' pids are only reachable here
        with open(f"/proc/{process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


class Bench:
    def __init__(self) -> None:
        self.files: list[str] = []
        self.pool: multiprocessing.pool.Pool | None = None
        self.pool_workers = 0

    def init(self, request: dict) -> dict:
        self.files = list(request["files"])
        return {
            "pillow": PIL.__version__,
            "python": sys.version.split()[0],
            "zlib": features.version("zlib"),
            "zlibNg": features.version("zlib_ng"),
            "libjpegTurbo": features.version("libjpeg_turbo"),
            "pngDecoder": "Pillow's own PngImagePlugin + zlib (C decoder, one thread)",
        }

    def _get_pool(self, workers: int) -> multiprocessing.pool.Pool:
        if self.pool is None or self.pool_workers != workers:
            if self.pool is not None:
                self.pool.close()
                self.pool.join()
            self.pool = multiprocessing.get_context("fork").Pool(processes=workers)
            self.pool_workers = workers
            self.pool.map(_pipeline_task, [(f, 64) for f in self.files[: workers * 2]])  # start-up outside the timing
        return self.pool

    def run(self, request: dict) -> dict:
        size = int(request["size"])
        mode = request["mode"]
        op = request.get("op", "pipeline")
        fn = preprocess if op == "pipeline" else decode_only
        task = _pipeline_task if op == "pipeline" else _decode_task
        files = list(request.get("files") or self.files)
        if not files:
            raise ValueError("no files (send init first)")
        if mode == "single":
            fn(files[0], size)  # warm-up image, as measurePreprocessing does
            cpu0, t0 = time.process_time(), time.perf_counter()
            for path in files:
                fn(path, size)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
        elif mode == "parallel":
            workers = int(request["workers"])
            pool = self._get_pool(workers)
            cpu0 = time.process_time() + _children_cpu(pool)
            t0 = time.perf_counter()
            out = pool.map(task, [(f, size) for f in files], chunksize=16)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() + _children_cpu(pool) - cpu0
            if len(out) != len(files):
                raise RuntimeError("pool lost images")
        else:
            raise ValueError(f"unknown mode {mode}")
        return {"images": len(files), "seconds": seconds, "cpuSeconds": cpu}

    def dump(self, request: dict) -> dict:
        size = int(request["size"])
        directory = request["dir"]
        for index, path in enumerate(request["files"]):
            with open(os.path.join(directory, f"{index}.raw"), "wb") as out:
                out.write(preprocess(path, size))
        return {"written": len(request["files"])}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def main() -> None:
    bench = Bench()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cmd = request.get("cmd")
        try:
            if cmd == "quit":
                break
            if cmd == "init":
                answer = bench.init(request)
            elif cmd == "run":
                answer = bench.run(request)
            elif cmd == "dump":
                answer = bench.dump(request)
            else:
                raise ValueError(f"unknown command {cmd!r}")
            answer = {"ok": True, **answer}
        except Exception as error:  # reported to data.ts, which fails the benchmark with it
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    bench.close()


if __name__ == "__main__":
    main()
