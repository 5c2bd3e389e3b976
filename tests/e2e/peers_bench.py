"""Peer comparison on the bundled ShapesWorld checkpoint, in one real WebUI v1.10.1, side by side.

Methods, each given the same two-object layouts (``placement.user_layouts``), seeds and samplers:

- **plain prompt**: the whole caption ("a red circle and a blue square"), no extension;
- **RegEdit** variants (``--regedit-variant NAME=JSON``): the caption and one region per box, plus the
  variant's fields, through ``"alwayson_scripts": {"regedit": {"args": [DOC]}}``;
- **Regional Prompter** (``RP_DIR``): Matrix mode as its README's first example teaches (region
  prompts separated by BREAK, divide ratio ``1,1`` along the boxes' direction, no base or common
  prompt); Mask mode with the boxes painted exactly in its region colours, the caption as base prompt
  (base ratio: the UI's default 0.2), once in Attention mode and once in Latent mode;
- **Tiled Diffusion** (``TD_DIR``): MultiDiffusion with "Region Prompt Control" on, "Draw full canvas
  background" on (the main prompt, the caption, over the whole canvas) and one Foreground region per
  box with its phrase (the extension appends a region's prompt to the main prompt).

The peers are linked into ``$A1111_DIR/extensions/`` for the run and the links removed at exit
(failures and SIGTERM included); nothing of them is copied into this repository. Each link points at a
folder in the run's work folder that holds a symlink per entry of the peer's checkout, so what a peer
writes beside its scripts (Regional Prompter's presets and "lastrun" mask) stays out of the checkout. Tiled Diffusion
copies ``modules.processing.opt_f`` (8) into its modules at import, while ShapesWorld's VAE downsamples
by 4 (RegEdit sets the WebUI's ``opt_f`` to the loaded model's factor): a tiny helper extension written
into the work folder, linked beside them, copies the WebUI's current ``opt_f`` into the peer's modules
before every batch and logs the latent shape the sampler sees.

Usage (see tests/e2e/README.md, "Peer comparison")::

    A1111_DIR=... A1111_PY=... RP_DIR=... TD_DIR=... .venv/bin/python tests/e2e/peers_bench.py \\
        [--layouts 6] [--seeds 1,2,3,4,5] [--samplers "DPM++ 2M,Euler a"] [--methods ...] \\
        [--regedit-variant NAME=JSON ...] [--json out.json] [--save DIR]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from e2e_webui import SETTINGS, WebUI, WebUIError, check_install, decode_png, log, plain_payload  # noqa: E402

from lib_regedit.evaluation import metrics  # noqa: E402
from lib_regedit.evaluation.cli import region_document  # noqa: E402
from lib_regedit.evaluation.placement import (PlacementScore, shape_reference, single_object_prompts,  # noqa: E402
                                              table, user_layouts)
from lib_regedit.shapesworld.data import caption_for  # noqa: E402

MODEL = "shapesworld"
SIZE, STEPS, CFG = 64, 20, 7.5
REFERENCE_SEEDS = (1, 2, 3)

DEFAULT_VARIANTS = {
    "RegEdit, defaults": {},
    "RegEdit, v2 defaults": {"version": 2},
    "RegEdit, regions alone": {"init": "noise"},
    "RegEdit, latent mode": {"mode": "latent"},
}
PEER_METHODS = {
    "rp-matrix": "Regional Prompter, Matrix",
    "rp-mask-base": "Regional Prompter, Mask + base prompt",
    "rp-mask-latent": "Regional Prompter, Mask + base prompt, Latent",
    "td-regions": "Tiled Diffusion, region control",
}
METHOD_KEYS = ["plain", "regedit", *PEER_METHODS]

# the links this run puts into $A1111_DIR/extensions (names no other install uses)
RP_LINK, TD_LINK = "regedit-bench-regional-prompter", "regedit-bench-tiled-diffusion"
HELPER_LINK = "regedit-bench-opt-f"
# folders of the peers' checkouts that they write into while they run: empty in the shadow folder
PEER_WRITES = {"regional_masks", "region_configs"}

HELPER_SCRIPT = '''"""Written by tests/e2e/peers_bench.py for one run; removed with its work folder.

Copies the WebUI's current ``modules.processing.opt_f`` (RegEdit sets it to the loaded checkpoint's
VAE factor) into every module of the peer extensions below that holds its own copy (Tiled Diffusion
imports it by value), before every batch; and logs the latent shape the sampler sees."""
import os
import sys

from modules import processing, script_callbacks, script_loading, scripts

PEER_DIRS = {dirs!r}


def _ours(module):
    path = getattr(module, "__file__", None)
    if not path:
        return False
    path = os.path.realpath(path)
    return any(path.startswith(d + os.sep) for d in PEER_DIRS)


def sync_peers():
    factor = processing.opt_f
    modules = list(sys.modules.values()) + list(script_loading.loaded_scripts.values())
    for module in modules:
        if _ours(module) and hasattr(module, "opt_f") and module.opt_f != factor:
            module.opt_f = factor
            print(f"regedit-bench: {{module.__name__}}.opt_f = {{factor}}", flush=True)


def log_latent(params):
    if params.sampling_step == 0:
        print(f"regedit-bench latent {{tuple(params.x.shape)}}", flush=True)


script_callbacks.on_cfg_denoiser(log_latent)


class Script(scripts.Script):
    def title(self):
        return "RegEdit bench peers opt_f"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process(self, p, *args):
        if {sync!r}:
            sync_peers()

    def process_batch(self, p, *args, **kwargs):
        if {sync!r}:
            sync_peers()
'''


# ---- the WebUI with ShapesWorld and the peers -------------------------------------------------------

class BenchWebUI(WebUI):
    """The harness's WebUI with ShapesWorld as its only checkpoint (installed before launch: no tiny
    SD1/SDXL models to write) and the peers linked beside RegEdit."""

    first_model = MODEL
    settings = dict(SETTINGS, sd_model_checkpoint=f"{MODEL}.safetensors", sd_checkpoints_limit=1)

    def __init__(self, *args, peers: dict, sync_opt_f: bool = True, threads: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads = threads
        self.peers = {name: Path(d).resolve() for name, d in peers.items()}  # link name -> checkout
        self.sync_opt_f = sync_opt_f
        self.links = []

    def env(self) -> dict:
        env = super().env()
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the peers' checkouts
        if self.threads:  # torch's intra-op threads (its default, one per core, thrashes on a shared machine)
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        return env

    def make_models(self) -> None:
        from lib_regedit.shapesworld.webui_install import install

        folder = self.work / "models" / "Stable-diffusion"
        folder.mkdir(parents=True, exist_ok=True)
        install(folder)

    def write_helper(self) -> Path:
        folder = self.work / "extensions" / HELPER_LINK
        (folder / "scripts").mkdir(parents=True, exist_ok=True)
        dirs = sorted(str(d) for d in self.peers.values())
        script = HELPER_SCRIPT.format(dirs=dirs, sync=self.sync_opt_f)
        (folder / "scripts" / "regedit_bench_opt_f.py").write_text(script)
        return folder

    def shadow(self, name: str, checkout: Path) -> Path:
        """A folder in the work folder standing for the peer's checkout: a symlink to each of its
        entries, except the folders it writes into, which are empty here. The WebUI knows an extension
        by the path it lists, so what the peer writes beside its scripts (Regional Prompter's presets
        file, its "lastrun" mask in regional_masks/) lands here, not in the checkout."""
        folder = self.work / "extensions" / name
        folder.mkdir(parents=True, exist_ok=True)
        for entry in checkout.iterdir():
            if entry.name in (".git", "__pycache__"):
                continue
            if entry.name in PEER_WRITES:
                (folder / entry.name).mkdir(exist_ok=True)
            else:
                (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        return folder

    def install_extension(self) -> None:
        ext = self.dir / "extensions"
        targets = {name: self.shadow(name, checkout) for name, checkout in self.peers.items()}
        targets[HELPER_LINK] = self.write_helper()
        for name, target in targets.items():
            checkout = self.peers.get(name, target)
            marker = [f for f in ("scripts/rp.py", "scripts/tilediffusion.py") if (checkout / f).exists()]
            for other in ext.iterdir():
                if other.name in targets:
                    continue
                if other.resolve() == checkout or any((other / f).exists() for f in marker):
                    raise WebUIError(f"{other} already installs this peer ({checkout.name}); move it away for "
                                     f"the bench run (two copies would register its script twice)")
        super().install_extension()  # RegEdit's link (refuses a second RegEdit install)
        for name, target in targets.items():
            link = ext / name
            if link.is_symlink():
                link.unlink()  # stale, from a killed run
            elif link.exists():
                raise WebUIError(f"{link} exists and is not our link; remove it")
            link.symlink_to(target, target_is_directory=True)
            self.links.append(link)

    def remove_extension(self) -> None:
        try:
            super().remove_extension()
        finally:
            for link in self.links:
                if link.is_symlink():
                    link.unlink()
            self.links = []


# ---- payloads -----------------------------------------------------------------------------------------

def phrases(layout) -> list[str]:
    return [f"a {c} {s}" for c, s, _ in layout]


def base_payload(prompt: str, seed: int, sampler: str, batch: int = 1) -> dict:
    return plain_payload(prompt=prompt, negative_prompt="", seed=seed, steps=STEPS, cfg_scale=CFG,
                         sampler_name=sampler, width=SIZE, height=SIZE, batch_size=batch, n_iter=1)


def regedit_doc(layout, extra: dict) -> dict:
    doc = region_document(layout, background=None)
    doc.pop("negative_prompt", None)
    doc.update(extra)
    return doc


def side_by_side(layout) -> bool:
    """True when the two boxes sit left and right of each other (else one above the other)."""
    (_, _, a), (_, _, b) = layout[0], layout[1]
    gap_x = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]))
    gap_y = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]))
    return gap_x >= gap_y


def reading_order(layout) -> list:
    """The objects left to right (side by side) or top to bottom: Regional Prompter's region order."""
    key = (lambda o: o[2][0] + o[2][2] / 2) if side_by_side(layout) else (lambda o: o[2][1] + o[2][3] / 2)
    return sorted(layout, key=key)


def rp_args(mode: str, matrix: str, ratios: str, usebase: bool, calc: str, mask: str = "") -> list:
    """Regional Prompter's 20 arguments (the order of its ui() return and README's API table):
    active, debug, mode tab, Matrix submode, Mask submode, Prompt submode, divide ratio, base ratio,
    use base, use common, use negative common, calc mode, options, LoRA neg TE, LoRA neg U-Net,
    threshold, mask, LoRA stop step, LoRA hires stop step, flip."""
    return [True, False, mode, matrix, "Mask", "Prompt", ratios, "0.2", usebase, False, False, calc, False,
            "0", "0", "0.4", mask, "0", "0", False]


def rp_colour(index: int) -> tuple:
    """Regional Prompter's colour of region ``index`` (``regions.deterministic_colours``): HSV hues
    0, 1/2, 1/4, 3/4, 1/8, ... at saturation and value 0.5, times 256."""
    import colorsys

    if index == 0:
        hue = 0.0
    else:
        cycle = math.ceil(math.log2(index + 1))
        step = 1 / 2 ** cycle
        hue = step + 2 * step * (index - 2 ** (cycle - 1))
    return tuple(int(v * 256) for v in colorsys.hsv_to_rgb(hue, 0.5, 0.5))


def rp_mask_png(objects) -> str:
    """A white ``SIZE`` x ``SIZE`` mask with box i painted in region colour i, as base64 PNG (the API
    form its ``process`` reads: a path or base64 image)."""
    import numpy as np
    from PIL import Image

    arr = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    for i, (_, _, box) in enumerate(objects):
        arr[metrics.box_mask(box, SIZE, SIZE)] = rp_colour(i)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def td_args(layout) -> list:
    """Tiled Diffusion's arguments (its ui() return): the 21 settings, then 8 regions x (enable, x, y,
    w, h, prompt, neg prompt, type, feather, seed)."""
    settings = [True, "MultiDiffusion",       # enabled, method
                False, True, 1024, 1024,       # overwrite size, keep input size, width, height
                96, 96, 48, 4,                 # latent tile w, h, overlap, tile batch size (UI defaults)
                "None", 2.0,                   # upscaler, scale factor
                False, 10, 1, 1, 64,           # noise inversion (img2img only)
                False,                         # ControlNet tensor on CPU
                True, True, False]             # region control, draw full canvas background, causal layers
    regions = []
    for i in range(8):
        if i < len(layout):
            c, s, (x, y, w, h) = layout[i]
            # seed -1 (the UI's): WebUI 1.10's txt2img noise does not go through the
            # create_random_tensors it hooks, so a region's seed has no effect there
            regions += [True, x, y, w, h, f"a {c} {s}", "", "Foreground", 0.2, -1]
        else:
            regions += [False, 0.4, 0.4, 0.2, 0.2, "", "", "Background", 0.2, -1]
    return settings + regions


def method_payload(key: str, variant: dict | None, layout, seed: int, sampler: str) -> dict:
    caption = caption_for(phrases(layout))
    if key == "plain":
        return base_payload(caption, seed, sampler)
    if key == "regedit":
        payload = base_payload(caption, seed, sampler)
        payload["alwayson_scripts"] = {"regedit": {"args": [regedit_doc(layout, variant)]}}
        return payload
    ordered = reading_order(layout)
    if key == "rp-matrix":
        payload = base_payload(" BREAK ".join(phrases(ordered)), seed, sampler)
        matrix = "Columns" if side_by_side(layout) else "Rows"
        args = rp_args("Matrix", matrix, "1,1", False, "Attention")
        payload["alwayson_scripts"] = {"Regional Prompter": {"args": args}}
        return payload
    if key in ("rp-mask-base", "rp-mask-latent"):
        payload = base_payload(" BREAK ".join([caption] + phrases(ordered)), seed, sampler)
        calc = "Latent" if key == "rp-mask-latent" else "Attention"
        args = rp_args("Mask", "Columns", "1,1", True, calc, mask=rp_mask_png(ordered))
        payload["alwayson_scripts"] = {"Regional Prompter": {"args": args}}
        return payload
    if key == "td-regions":
        payload = base_payload(caption, seed, sampler)
        payload["alwayson_scripts"] = {"Tiled Diffusion": {"args": td_args(layout)}}
        return payload
    raise ValueError(key)


# ---- the run --------------------------------------------------------------------------------------------

def images_of(res) -> list:
    return [decode_png(b).convert("RGB") for b in res["images"]]


LATENT_RE = re.compile(r"regedit-bench latent \((\d+), (\d+), (\d+), (\d+)\)")
TD_TILE_RE = re.compile(r"hooked into .* sampler, Tile size: (\d+)x(\d+)")


def git_head(path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception as e:  # not a git checkout
        return f"unknown ({e.__class__.__name__})"


def webui_version(server: WebUI) -> str:
    m = re.search(r"^Version: (\S+)", server.log_tail(10**7), re.MULTILINE)
    if m:
        return m.group(1)
    try:
        return subprocess.run(["git", "-C", str(server.dir), "describe", "--tags"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def contact_sheet(path: Path, layout, rows: dict) -> None:
    """``rows``: {method: [images across seeds]}, drawn 3x with the boxes outlined."""
    from PIL import Image, ImageDraw

    scale, label_w, pad = 3, 250, 4
    cell = SIZE * scale + pad
    cols = max(len(v) for v in rows.values())
    sheet = Image.new("RGB", (label_w + cols * cell, len(rows) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (name, images) in enumerate(rows.items()):
        draw.text((4, r * cell + cell // 2 - 6), name, fill=(0, 0, 0))
        for c, img in enumerate(images):
            x0, y0 = label_w + c * cell, r * cell
            sheet.paste(img.resize((SIZE * scale, SIZE * scale), Image.NEAREST), (x0, y0))
            for _, _, (bx, by, bw, bh) in layout:
                draw.rectangle([x0 + bx * SIZE * scale, y0 + by * SIZE * scale,
                                x0 + (bx + bw) * SIZE * scale, y0 + (by + bh) * SIZE * scale], outline=(120, 120, 120))
    sheet.save(path)


def run(args) -> int:
    t_start = time.monotonic()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    keys = [k.strip() for k in args.methods.split(",") if k.strip()]
    unknown = [k for k in keys if k not in METHOD_KEYS]
    if unknown:
        log(f"unknown methods {unknown}; choose from {METHOD_KEYS}")
        return 2
    if "plain" not in keys:
        keys.insert(0, "plain")  # the reference for time and seed variety
    variants = DEFAULT_VARIANTS
    if args.regedit_variant:
        variants = {}
        for item in args.regedit_variant:
            name, _, doc = item.partition("=")
            variants[name.strip()] = json.loads(doc) if doc.strip() else {}
    peers = {}
    rp_dir, td_dir = os.environ.get("RP_DIR"), os.environ.get("TD_DIR")
    for key in list(keys):
        need = rp_dir if key.startswith("rp-") else td_dir if key.startswith("td-") else "-"
        if not need or (need != "-" and not (Path(need) / "scripts").is_dir()):
            log(f"skipping {key}: {'RP_DIR' if key.startswith('rp-') else 'TD_DIR'} does not name the peer's checkout")
            keys.remove(key)
    if any(k.startswith("rp-") for k in keys):
        peers[RP_LINK] = rp_dir
    if any(k.startswith("td-") for k in keys):
        peers[TD_LINK] = td_dir

    # (display name, key, variant) in the interleaving order
    methods = []
    for key in keys:
        if key == "regedit":
            methods += [(name, key, extra) for name, extra in variants.items()]
        elif key == "plain":
            methods.append(("plain prompt", key, None))
        else:
            methods.append((PEER_METHODS[key], key, None))

    layouts = user_layouts(args.layouts)
    work = Path(tempfile.mkdtemp(prefix="regedit-peers-"))
    server = BenchWebUI(os.environ["A1111_DIR"], os.environ["A1111_PY"], work, peers=peers,
                        sync_opt_f=not args.no_opt_f_sync, threads=args.threads, log=log)
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    ok = False
    try:
        server.start()
        t_ready = time.monotonic()
        version = webui_version(server)
        log(f"WebUI {version} ready at {server.url} in {t_ready - t_start:.0f}s (log: {server.log_path})")

        # shape reference: one-object plain prompts, seeds 1-3 as one batch, each sampler
        by_object = {}
        for sampler in samplers:
            for colour, shape in single_object_prompts():
                payload = base_payload(f"a {colour} {shape}", REFERENCE_SEEDS[0], sampler, batch=len(REFERENCE_SEEDS))
                by_object.setdefault((colour, shape), []).extend(images_of(server.generate("txt2img", payload)))
        reference = shape_reference(by_object)
        t_ref = time.monotonic()
        log(f"shape reference from {sum(map(len, by_object.values()))} one-object images in {t_ref - t_ready:.0f}s: "
            + ", ".join(f"{s}: aspect {a:.2f}-{b:.2f}, fill {c:.2f}-{d:.2f}" for s, (a, b, c, d) in reference.items()))

        scores = {name: PlacementScore() for name, _, _ in methods}
        latents, td_tiles, per_image = {}, set(), []
        total = len(layouts) * len(samplers) * len(seeds) * len(methods)
        done = 0
        for li, layout in enumerate(layouts):
            for sampler in samplers:
                got = {name: [] for name, _, _ in methods}
                for seed in seeds:
                    for name, key, variant in methods:
                        payload = method_payload(key, variant, layout, seed, sampler)
                        offset = server.log_size()
                        t0 = time.perf_counter()
                        res = server.generate("txt2img", payload)
                        dt = time.perf_counter() - t0
                        image = images_of(res)[0]
                        scores[name].seconds += dt
                        scores[name].add_image(image, layout, reference)
                        got[name].append(image)
                        text = server.log_since(offset)
                        for m in LATENT_RE.finditer(text):
                            latents.setdefault(name, set()).add(f"{m.group(3)}x{m.group(4)}")
                        if key == "td-regions":
                            td_tiles.update(f"{a}x{b}" for a, b in TD_TILE_RE.findall(text))
                        per_image.append({"method": name, "layout": li, "sampler": sampler, "seed": seed,
                                          "seconds": round(dt, 3)})
                        if save:
                            slug = re.sub(r"[^a-z0-9]+", "-", name.lower())
                            image.save(save / f"l{li}_{sampler.replace(' ', '_')}_s{seed}_{slug}.png")
                        done += 1
                    log(f"  {done}/{total} images ({time.monotonic() - t_ref:.0f}s)")
                for name, images in got.items():
                    scores[name].add_seeds(images)
                if save:
                    contact_sheet(save / f"sheet_l{li}_{sampler.replace(' ', '_')}.png", layout, got)
        t_end = time.monotonic()

        plain = scores["plain prompt"].row()
        rows = {name: s.row(plain["variety"], scores["plain prompt"].seconds) for name, s in scores.items()}
        lines = table(rows).splitlines()
        lines[0] += " images |"
        lines[1] += "---|"
        for i, name in enumerate(rows, start=2):
            lines[i] += f" {rows[name]['images']} |"
        commits = {"Regional Prompter": git_head(rp_dir) if rp_dir and peers.get(RP_LINK) else None,
                   "Tiled Diffusion": git_head(td_dir) if td_dir and peers.get(TD_LINK) else None}
        print()
        print(f"ShapesWorld {SIZE}x{SIZE}, {STEPS} steps, CFG {CFG}; {len(layouts)} layouts x seeds {seeds} x "
              f"samplers {samplers}; WebUI {version}")
        for peer, commit in commits.items():
            if commit:
                print(f"{peer}: {commit}")
        print()
        print("\n".join(lines))
        print()
        print("latent seen by the sampler: " + "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in latents.items()))
        if td_tiles:
            print(f"Tiled Diffusion's own latent tile: {', '.join(sorted(td_tiles))}")
        print(f"time: start {t_ready - t_start:.0f}s, shape reference {t_ref - t_ready:.0f}s, "
              f"{total} images {t_end - t_ref:.0f}s, total {t_end - t_start:.0f}s")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "settings": {"size": SIZE, "steps": STEPS, "cfg": CFG, "layouts": layouts, "seeds": seeds,
                             "samplers": samplers, "regedit_variants": variants},
                "webui": version, "commits": commits, "reference": reference, "rows": rows,
                "latents": {n: sorted(v) for n, v in latents.items()}, "td_tiles": sorted(td_tiles),
                "seconds": {"start": t_ready - t_start, "reference": t_ref - t_ready, "images": t_end - t_ref,
                            "total": t_end - t_start},
                "images": per_image}, indent=1, default=str))
        ok = True
        return 0
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping the WebUI")
        return 130
    except WebUIError as e:
        log(f"the WebUI failed: {e}")
        return 1
    finally:
        server.stop()  # the WebUI's process group, RegEdit's link and the peers' links
        if ok and not args.keep_work:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work folder kept: {work}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layouts", type=int, default=6, help="how many of placement.user_layouts (default 6)")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--samplers", default="DPM++ 2M,Euler a")
    p.add_argument("--methods", default=",".join(METHOD_KEYS), help=f"comma list of {METHOD_KEYS} (plain always runs)")
    p.add_argument("--regedit-variant", action="append", metavar="NAME=JSON",
                   help="a RegEdit variant: the document's extra fields (repeat; replaces the default four)")
    p.add_argument("--json", help="write the figures, settings and per-image timings here")
    p.add_argument("--save", help="write every image and a contact sheet per layout and sampler into this folder")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (webui.log) after a good run")
    p.add_argument("--threads", type=int, help="the WebUI's torch threads (OMP_NUM_THREADS); default: torch's own")
    p.add_argument("--no-opt-f-sync", action="store_true",
                   help="leave Tiled Diffusion's copy of opt_f at 8 (to see what it does without the fix)")
    args = p.parse_args(argv)
    reason = check_install(os.environ.get("A1111_DIR"), os.environ.get("A1111_PY"))
    if reason:
        log(reason)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
