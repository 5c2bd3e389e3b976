"""Drive a real AUTOMATIC1111 WebUI v1.10 install for the end-to-end tests.

:class:`WebUI` installs this checkout into ``$A1111_DIR/extensions/`` (a symlink), writes tiny
random-weight checkpoints (``make_models.py``, run with ``$A1111_PY``), launches ``launch.py`` on
127.0.0.1 only, fully offline, and stops it and removes the link in :meth:`WebUI.stop`.

Nothing here imports torch or the WebUI; it talks HTTP. Everything the run writes (checkpoints, a
Hugging Face cache, ``config.json``, the log) lives in one work folder outside the WebUI.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXTENSION_NAME = "sd-webui-regedit-e2e"
SD1 = "regedit-e2e-sd1"
SDXL = "regedit-e2e-sdxl"
SD15_FULL = "regedit-e2e-sd15-full"
# Opt-in: the full SD 1.5 architecture with random weights (~2 GB on disk, slow on a CPU).
FULL_SD15 = os.environ.get("REGEDIT_E2E_FULL_SD15") == "1"
# WebUI Forge (``ForgeWebUI``): checkpoints Forge recognises (``make_forge_models.py``)
FORGE_SD1 = "forge-sd15-e2e"
FORGE_IP2P = "forge-sd15-ip2p-e2e"
FORGE_SDXL = "forge-sdxl-e2e"

# Offline, CPU, loopback only. --skip-prepare-environment: no git clones and no pip (so the
# extension's install.py is not run either); --api: the HTTP API next to the UI.
LAUNCH_FLAGS = [
    "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test", "--no-half", "--use-cpu", "all",
    "--api", "--no-download-sd-model", "--server-name", "127.0.0.1",
]


def half_flags(value: str | None = None) -> list[str] | None:
    """``REGEDIT_E2E_HALF``: unset or ``0`` keeps the float32 run (``--no-half``); ``1`` drops ``--no-half``
    (the WebUI's own half-precision default); any other value drops it and adds those flags
    (``REGEDIT_E2E_HALF="--precision half"``, ``"--upcast-sampling"``). None when off."""
    value = os.environ.get("REGEDIT_E2E_HALF", "") if value is None else value
    if value.strip() in ("", "0"):
        return None
    return [] if value.strip() == "1" else shlex.split(value)


def launch_flags_for(base: list[str], drop: tuple[str, ...], value: str | None = None) -> list[str]:
    """``base`` with the half-precision choice of ``REGEDIT_E2E_HALF`` applied (``drop`` leaves it)."""
    extra = half_flags(value)
    if extra is None:
        return list(base)
    return [f for f in base if f not in drop] + extra

SETTINGS = {
    "sd_model_checkpoint": f"{SD1}.safetensors",
    "sd_checkpoints_limit": 2,            # keep SD1 and SDXL both loaded: switching is then instant
    "sd_checkpoints_keep_in_cpu": True,
    "live_previews_enable": False,        # previews would try to download TAESD
    "show_progress_every_n_steps": -1,
    "samples_save": False,
    "grid_save": False,
    "save_init_img": False,
    "enable_pnginfo": True,
    "CLIP_stop_at_last_layers": 1,
    # WebUI 1.10 restores an override_settings entry after the request only when the option is in
    # config.json: list the ones the tests override with their defaults, or the overrides would stick.
    "s_min_uncond": 0.0,
    "s_min_uncond_all": False,
    "skip_early_cond": 0.0,
    "batch_cond_uncond": True,
    "pad_cond_uncond": False,
    "pad_cond_uncond_v0": False,
}


class WebUIError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM the WebUI if the test process dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the fixture finalizer is the only guard
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_install(a1111_dir: str | None, a1111_py: str | None) -> str | None:
    """Why the end-to-end tests cannot run here, or None when they can."""
    if not a1111_dir or not a1111_py:
        return ("set A1111_DIR to a WebUI v1.10 checkout and A1111_PY to the Python of its environment "
                "to run the end-to-end tests (see tests/e2e/README.md)")
    d = Path(a1111_dir)
    if not (d / "launch.py").is_file() or not (d / "modules" / "launch_utils.py").is_file():
        return f"A1111_DIR={a1111_dir} is not a WebUI checkout (no launch.py / modules/launch_utils.py)"
    for repo in ("stable-diffusion-stability-ai", "generative-models", "k-diffusion"):
        if not (d / "repositories" / repo).is_dir():
            return f"A1111_DIR={a1111_dir} lacks repositories/{repo} (the WebUI has never been prepared)"
    if not Path(a1111_py).is_file():
        return f"A1111_PY={a1111_py} does not exist"
    return None


class ServerProcess:
    """A server a test session starts in its own process group (``proc``), logging to ``log_path``: how it
    is stopped (the group, SIGTERM then SIGKILL, then :meth:`uninstall`) and how its log is read. The
    WebUI, Forge and ComfyUI harnesses share it."""

    proc: subprocess.Popen | None = None
    log_path: Path

    def uninstall(self) -> None:
        """What the session put into the server's install (an extension link), removed."""

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                # The server runs in its own session (process group): signal only that group.
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=30)
        finally:
            self.uninstall()
            if getattr(self, "_log_file", None):
                self._log_file.close()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")


class WebUI(ServerProcess):
    first_model = SD1
    settings = SETTINGS

    def __init__(self, a1111_dir: str, a1111_py: str, work: Path, *, ui: bool = True, log=print):
        self.dir = Path(a1111_dir).resolve()
        self.py = a1111_py
        self.work = Path(work)
        self.ui = ui
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.link = self.dir / "extensions" / EXTENSION_NAME
        self.log_path = self.work / "webui.log"
        self.lora_dir = self.work / "models" / "Lora"  # tests write their LoRA files here
        self.controlnet_dir = self.work / "models" / "ControlNet"  # ... and their ControlNet models here
        self.has_controlnet = (self.dir / "extensions" / "sd-webui-controlnet" / "preload.py").exists()
        import requests  # imported here so that collecting the skipped tests needs nothing extra

        self.session = requests.Session()
        self.current_model: str | None = None

    # ---- setup -------------------------------------------------------------------------------
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COMMANDLINE_ARGS"))}
        env.update(HF_HOME=str(self.work / "models" / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_HUB_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", GRADIO_ANALYTICS_ENABLED="False",
                   PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        env.pop("VIRTUAL_ENV", None)
        return env

    def make_models(self) -> None:
        out = self.work / "models"
        names = [SD1, SDXL] + ([SD15_FULL] if FULL_SD15 else [])
        if all((out / "Stable-diffusion" / f"{n}.safetensors").exists() for n in names):
            return
        cmd = [self.py, str(HERE / "make_models.py"), "--webui", str(self.dir), "--out", str(out)]
        if FULL_SD15:
            cmd.append("--full-sd15")
        res = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise WebUIError(f"make_models.py failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")

    def install_extension(self) -> None:
        ext = self.dir / "extensions"
        ext.mkdir(exist_ok=True)
        for other in ext.iterdir():
            if other.name != EXTENSION_NAME and (other / "scripts" / "regedit.py").exists():
                raise WebUIError(f"{other} is another RegEdit install; disable or move it before the e2e run "
                                 f"(two copies would register the script twice)")
        if self.link.is_symlink() or self.link.exists():
            if self.link.is_symlink():
                self.link.unlink()  # a stale link left by a killed run
            else:
                raise WebUIError(f"{self.link} exists and is not our link; remove it")
        self.link.symlink_to(REPO, target_is_directory=True)

    def remove_extension(self) -> None:
        if self.link.is_symlink():
            self.link.unlink()

    def write_settings(self) -> Path:
        path = self.work / "config.json"
        settings = dict(self.settings)
        if half_flags() is not None:
            # In half precision a VAE that gives NaN makes WebUI 1.10 switch the VAE to float32 for the rest
            # of the session ("Automatically revert VAE to 32-bit floats"), which changes every later plain
            # image by a level: the one failing request fails alone instead.
            settings["auto_vae_precision"] = False
        path.write_text(json.dumps(settings, indent=1))
        return path

    def launch_flags(self) -> list[str]:
        flags = launch_flags_for(LAUNCH_FLAGS, ("--no-half",))
        if self.has_controlnet:  # the flag exists only with the extension (its preload.py adds it)
            self.controlnet_dir.mkdir(parents=True, exist_ok=True)
            flags += ["--controlnet-dir", str(self.controlnet_dir)]
        return flags

    # ---- process -----------------------------------------------------------------------------
    def start(self, timeout: float = 600) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.make_models()
        self.install_extension()
        settings = self.write_settings()
        cmd = [self.py, "launch.py", *self.launch_flags(), "--port", str(self.port),
               "--ckpt-dir", str(self.work / "models" / "Stable-diffusion"),
               "--ui-settings-file", str(settings), "--ui-config-file", str(self.work / "ui-config.json"),
               "--embeddings-dir", str(self.work / "embeddings"), "--hypernetwork-dir", str(self.work / "hypernetworks"),
               "--lora-dir", str(self.lora_dir)]
        self.lora_dir.mkdir(parents=True, exist_ok=True)
        if not self.ui:
            cmd.append("--nowebui")
        self.log(f"launching the WebUI: cd {self.dir} && {' '.join(cmd)}")
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=self.env(), stdout=self._log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WebUIError(f"the WebUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            # No request before the WebUI says it has started: one that reaches the server between
            # gradio's launch and the API's set-up makes the API fail ("Cannot add middleware after an
            # application has started"), which happens on a loaded machine.
            if b"Startup time:" not in self.log_path.read_bytes():
                time.sleep(1)
                continue
            try:
                r = self.session.get(f"{self.url}/sdapi/v1/sd-models", timeout=5)
                if r.status_code == 200 and r.json():
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            raise WebUIError(f"the WebUI did not answer within {timeout:.0f}s:\n{self.log_tail()}")
        self.use_model(self.first_model)

    def uninstall(self) -> None:
        self.remove_extension()

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:  # attached to a WebUI started elsewhere (REGEDIT_E2E_URL): ask it
            return self.get("/sdapi/v1/progress", timeout=30).status_code == 200
        except Exception:
            return False

    # ---- HTTP --------------------------------------------------------------------------------
    def post(self, path: str, payload=None, *, data: bytes | None = None, timeout: float = 600,
             headers: dict | None = None):
        if data is None:
            # json.dumps writes NaN/Infinity as Python's json (and so FastAPI) reads them; requests'
            # own json= refuses them, and the malformed-payload test needs them on the wire.
            data = json.dumps(payload).encode()
        return self.session.post(f"{self.url}{path}", data=data, timeout=timeout,
                                 headers=headers or {"Content-Type": "application/json"})

    def get(self, path: str, timeout: float = 60):
        return self.session.get(f"{self.url}{path}", timeout=timeout)

    def post_and_interrupt(self, path: str, payload: dict, *, sampling_steps: int, at_step: int,
                           poll: float = 0.02, deadline: float = 120):
        """POST in a thread and, once the WebUI's progress shows a pass of ``sampling_steps`` at step
        ``at_step`` or later, press Interrupt. Returns (the response, whether Interrupt was pressed)."""
        import threading

        result = {}
        worker = threading.Thread(target=lambda: result.update(response=self.post(path, payload)))
        worker.start()
        end, interrupted = time.monotonic() + deadline, False
        while worker.is_alive() and time.monotonic() < end:
            state = self.get("/sdapi/v1/progress?skip_current_image=true").json()["state"]
            if state.get("sampling_steps") == sampling_steps and state.get("sampling_step", 0) >= at_step:
                self.post("/sdapi/v1/interrupt", {})
                interrupted = True
                break
            time.sleep(poll)
        worker.join(timeout=300)
        return result.get("response"), interrupted

    def use_model(self, name: str) -> None:
        if self.current_model == name:
            # a pasted infotext's "Model" (override_settings) can switch the WebUI's model behind this
            # cache: ask the WebUI, which is cheap
            got = self.get("/sdapi/v1/options").json().get("sd_model_checkpoint", "")
            if got.startswith(name):
                return
        r = self.post("/sdapi/v1/options", {"sd_model_checkpoint": f"{name}.safetensors"})
        if r.status_code != 200:
            raise WebUIError(f"switching to {name} failed: {r.status_code} {r.text[:500]}")
        got = self.get("/sdapi/v1/options").json().get("sd_model_checkpoint", "")
        if not got.startswith(name):
            raise WebUIError(f"switching to {name} failed (now {got}):\n{self.log_tail()}")
        self.current_model = name

    def generate(self, kind: str, payload: dict, *, model: str | None = None, expect_ok: bool = True) -> dict:
        self.use_model(model or self.first_model)
        r = self.post(f"/sdapi/v1/{kind}", payload)
        if expect_ok and r.status_code != 200:
            raise WebUIError(f"{kind} returned {r.status_code}: {r.text[:3000]}\n--- WebUI log ---\n{self.log_tail(4000)}")
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else {"raw": r.text}


def skip_unless_installed(items, folder: Path, reason: str | None) -> None:
    """pytest's collection hook for a folder of end-to-end tests: mark every test in ``folder`` to skip
    with ``reason`` (why the install they need is missing), or nothing when ``reason`` is None."""
    if reason is None:
        return
    import pytest

    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if folder in Path(str(item.fspath)).resolve().parents:
            item.add_marker(marker)


def serve(request, server: WebUI, work: Path, keep: bool) -> WebUI:
    """Start ``server`` for a pytest session and always stop it at the end: the work folder is deleted
    after a green run and kept (log, screenshots) after a failure, unless ``keep``."""
    import shutil

    def finish():
        server.stop()
        if not keep and request.session.testsfailed == 0:
            shutil.rmtree(work, ignore_errors=True)
        elif not keep:
            log(f"e2e work folder kept for a look: {work}")

    # SIGTERM (a CI timeout, `kill`) would end pytest without finalizers and orphan the WebUI: turn it
    # into KeyboardInterrupt so the finalizer below still runs. (The child also dies with us anyway.)
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    request.addfinalizer(lambda: signal.signal(signal.SIGTERM, previous))
    # The finalizer is registered before the start, so a failed or interrupted start is cleaned up too.
    request.addfinalizer(finish)
    server.start()
    log(f"{type(server).__name__} ready at {server.url} (log: {server.log_path})")
    return server


# ---- WebUI Forge --------------------------------------------------------------------------------

# Forge's own CPU flag; it has no --no-half / --use-cpu / --no-download-sd-model
FORGE_LAUNCH_FLAGS = ["--always-cpu", "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test",
                      "--api", "--server-name", "127.0.0.1"]


def check_forge_install(forge_dir: str | None, forge_py: str | None) -> str | None:
    """Why the Forge end-to-end tests cannot run here, or None when they can."""
    if not forge_dir or not forge_py:
        return ("set FORGE_DIR to a WebUI Forge checkout and FORGE_PY to the Python of its environment to run "
                "the Forge end-to-end tests (see tests/e2e/README.md)")
    d = Path(forge_dir)
    if not (d / "launch.py").is_file() or not (d / "modules_forge").is_dir():
        return f"FORGE_DIR={forge_dir} is not a WebUI Forge checkout (no launch.py / modules_forge)"
    if not (d / "repositories" / "huggingface_guess").is_dir():
        return f"FORGE_DIR={forge_dir} lacks repositories/huggingface_guess (Forge has never been prepared)"
    if not Path(forge_py).is_file():
        return f"FORGE_PY={forge_py} does not exist"
    return None


class ForgeWebUI(WebUI):
    """The same harness on WebUI Forge: its flags, and checkpoints it recognises (full-size text encoders
    and VAE, a cut-down UNet) written by ``make_forge_models.py`` with Forge's own classes."""

    first_model = FORGE_SD1
    settings = dict(SETTINGS, sd_model_checkpoint=f"{FORGE_SD1}.safetensors")

    def __init__(self, *args, sdxl: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.sdxl = sdxl
        self.has_controlnet = False  # Forge's built-in ControlNet is not what test_e2e_controlnet drives
        # Forge's server re-raises an API error after answering it and drops that keep-alive connection,
        # so the next request on it would fail with "connection reset": one connection per request
        self.session.headers["Connection"] = "close"

    def launch_flags(self) -> list[str]:
        # Forge has no --no-half: with --always-cpu it runs float32 unless told otherwise, so
        # REGEDIT_E2E_HALF only adds flags here ("--unet-in-bf16 --vae-in-bf16 ...")
        return launch_flags_for(FORGE_LAUNCH_FLAGS, ())

    def make_models(self) -> None:
        out = self.work / "models" / "Stable-diffusion"
        cmd = [self.py, str(HERE / "make_forge_models.py"), *(["--sdxl"] if self.sdxl else []), str(out)]
        res = subprocess.run(cmd, cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise WebUIError(f"make_forge_models.py failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")


# ---- payloads and images --------------------------------------------------------------------------

def plain_payload(**over) -> dict:
    payload = {"prompt": "a landscape", "negative_prompt": "", "seed": 1234, "steps": 3, "width": 64,
               "height": 64, "cfg_scale": 7.0, "sampler_name": "Euler a", "batch_size": 1, "n_iter": 1}
    payload.update(over)
    return payload


def with_regions(payload: dict, doc) -> dict:
    payload = dict(payload)
    payload["alwayson_scripts"] = {"regedit": {"args": [doc]}}
    return payload


def decode_png(b64: str):
    from PIL import Image

    if "," in b64[:64]:
        b64 = b64.split(",", 1)[1]
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def pixels(b64: str) -> bytes:
    img = decode_png(b64)
    return img.mode.encode() + repr(img.size).encode() + img.tobytes()


def pixel_diff(a_b64: str, b_b64: str) -> tuple[int, float]:
    """(max, mean) absolute difference of two same-size images, in 8-bit levels."""
    import numpy as np

    a = np.asarray(decode_png(a_b64).convert("RGB"), dtype=np.int16)
    b = np.asarray(decode_png(b_b64).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return 255, 255.0
    d = np.abs(a - b)
    return int(d.max()), float(d.mean())


def png_b64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def infotext_of(b64: str) -> str:
    return decode_png(b64).info.get("parameters", "")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def assert_rest_kept(regions, source_b64, target_b64, version=None):
    """Outside the edited boxes (grown by the keep margin) the target is the source, pixel for pixel;
    a version 3 document (MRGD's pair) lets it differ there."""
    import numpy as np

    from lib_regedit.documents import parse_region_document
    from lib_regedit.editing.keep_outside import edit_area

    s = np.asarray(decode_png(source_b64).convert("RGB"))
    t = np.asarray(decode_png(target_b64).convert("RGB"))
    doc = {"regions": regions} if version is None else {"regions": regions, "version": version}
    outside = edit_area(parse_region_document(doc), *s.shape[:2]).numpy() == 0
    same = np.array_equal(s[outside], t[outside])
    assert same if version is None else not same, f"outside the edits the target {'differs' if version is None else 'is the source'}"
