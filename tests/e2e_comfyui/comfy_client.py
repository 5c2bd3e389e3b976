"""Drive a real ComfyUI for the end-to-end tests.

:class:`ComfyUI` writes random-weight checkpoints (``tests/e2e/make_comfyui_models.py``, run with
``$COMFYUI_PY``) into a work folder, links this checkout into ``$COMFYUI_DIR/custom_nodes/`` and
launches ``main.py --cpu`` on 127.0.0.1 only, fully offline, with every folder it writes to (output,
temp, input, user, database) inside the work folder and the work folder's checkpoints added through
``--extra-model-paths-config``. :meth:`ComfyUI.stop` stops its process group and removes the link.

The client talks HTTP (``POST /prompt``, ``GET /history/<id>``, ``GET /view``); nothing here imports
torch or ComfyUI. Workflows are ComfyUI's API format: ``{node_id: {"class_type": ..., "inputs": {...}}}``,
a link being ``[node_id, output_index]``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from e2e_webui import ServerProcess, _die_with_parent, free_port  # noqa: E402

LINK_NAME = "sd-webui-regedit-e2e"
SD15 = "comfyui-sd15-e2e.safetensors"
SD15_IP2P = "comfyui-sd15-ip2p-e2e.safetensors"
SDXL = "comfyui-sdxl-e2e.safetensors"
# REGEDIT_E2E_COMFYUI_SDXL=1: also write the SDXL-family checkpoint (3.3 GB) and run the SDXL cases
WITH_SDXL = os.environ.get("REGEDIT_E2E_COMFYUI_SDXL") == "1"

# CPU, loopback only, nothing fetched: the frontend is the pip package's (comfyui-frontend-package), the
# manager is off unless --enable-manager, --disable-api-nodes drops the cloud nodes (and the frontend's
# calls to their service), --preview-method none (no TAESD previews).
LAUNCH_FLAGS = ["--cpu", "--listen", "127.0.0.1", "--disable-auto-launch", "--disable-api-nodes",
                "--preview-method", "none"]

# An input no node declares: ComfyUI leaves it out of the node's call but puts it in the node's cache
# signature, so a fresh value makes that node (and what follows it) run again. See ComfyUI.queue.
NONCE_INPUT = "regedit_e2e_nonce"


class ComfyError(RuntimeError):
    """A workflow ComfyUI refused or failed: ``kind`` is "validation" (POST /prompt answered 400) or
    "execution" (the history holds an ``execution_error``); ``message`` is ComfyUI's message (the
    exception's for an execution error), ``details`` the whole error object."""

    def __init__(self, kind: str, message: str, details: dict | None = None, node_errors: dict | None = None):
        super().__init__(f"ComfyUI {kind} error: {message}")
        self.kind = kind
        self.message = message
        self.details = details or {}
        self.node_errors = node_errors or {}

    def text(self) -> str:
        """Every message ComfyUI gave, one string: the error, each node error's message and details, the
        exception's type and message. What a test searches for the field and the fix."""
        parts = [self.message]
        if self.kind == "validation":
            err = self.details.get("error", {})
            parts += [str(err.get("details", "")), json.dumps(err.get("extra_info", {}))]
            for node_id, ne in self.node_errors.items():
                for e in ne.get("errors", []):
                    parts += [f"{ne.get('class_type', '?')}#{node_id}: {e.get('message', '')}", str(e.get("details", ""))]
        else:
            parts += [str(self.details.get("exception_type", "")), str(self.details.get("exception_message", ""))]
        return "\n".join(p for p in parts if p)


@dataclass
class Result:
    prompt_id: str
    outputs: dict                        # history's outputs, by node id
    images: list = field(default_factory=list)   # uint8 numpy arrays (H, W, C), in output-node order
    pngs: list = field(default_factory=list)     # the files' bytes, as /view gave them
    status: dict = field(default_factory=dict)
    seconds: float = 0.0


def check_install(comfy_dir: str | None, comfy_py: str | None) -> str | None:
    """Why the ComfyUI end-to-end tests cannot run here, or None when they can."""
    if not comfy_dir or not comfy_py:
        return ("set COMFYUI_DIR to a ComfyUI checkout and COMFYUI_PY to the Python of its environment to run "
                "the ComfyUI end-to-end tests (see tests/e2e/README.md)")
    d = Path(comfy_dir)
    if not (d / "main.py").is_file() or not (d / "nodes.py").is_file() or not (d / "comfy").is_dir():
        return f"COMFYUI_DIR={comfy_dir} is not a ComfyUI checkout (no main.py / nodes.py / comfy/)"
    if not Path(comfy_py).is_file():
        return f"COMFYUI_PY={comfy_py} does not exist"
    return None


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


class ComfyUI(ServerProcess):
    """One ComfyUI process for a test session (``start``/``stop``), and its HTTP client."""

    def __init__(self, comfy_dir: str, comfy_py: str, work: Path, *, sdxl: bool = False, log=print,
                 extra_flags: list[str] | None = None):
        self.dir = Path(comfy_dir).resolve()
        self.py = comfy_py
        self.work = Path(work)
        self.sdxl = sdxl
        self.log = log
        self.extra_flags = list(extra_flags or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.link = self.dir / "custom_nodes" / LINK_NAME
        self.log_path = self.work / "comfyui.log"
        self.models = self.work / "models"
        self.client_id = uuid.uuid4().hex
        import requests  # here, so that collecting the skipped tests needs nothing extra

        self.session = requests.Session()

    # ---- setup -------------------------------------------------------------------------------
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1",
                   PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", TQDM_DISABLE="1",
                   HF_HOME=str(self.work / "hf"))  # nothing should read it; if something does, not ~/.cache
        env.setdefault("OMP_NUM_THREADS", "1")
        env.pop("VIRTUAL_ENV", None)
        return env

    def make_models(self) -> dict:
        out = self.models / "checkpoints"
        cmd = [self.py, str(REPO / "tests" / "e2e" / "make_comfyui_models.py"), *(["--sdxl"] if self.sdxl else []),
               str(out)]
        res = subprocess.run(cmd, cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise ComfyError("setup", f"make_comfyui_models.py failed ({res.returncode}):\n{res.stdout[-3000:]}\n"
                                      f"{res.stderr[-5000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    def install_link(self) -> None:
        custom = self.dir / "custom_nodes"
        custom.mkdir(exist_ok=True)
        for other in custom.iterdir():
            if other.name == LINK_NAME:
                continue
            if (other / "lib_regedit").is_dir():
                raise ComfyError("setup", f"{other} is another RegEdit install; move it out of custom_nodes before "
                                          f"the e2e run (two copies would register the nodes twice)")
        if self.link.is_symlink():
            self.link.unlink()  # a stale link left by a killed run
        elif self.link.exists():
            raise ComfyError("setup", f"{self.link} exists and is not our link; remove it")
        self.link.symlink_to(REPO, target_is_directory=True)

    def remove_link(self) -> None:
        if self.link.is_symlink():
            self.link.unlink()

    def write_model_paths(self) -> Path:
        # ComfyUI's extra_model_paths.yaml format: a named section with a base_path and folders under it
        path = self.work / "extra_model_paths.yaml"
        path.write_text(f"regedit_e2e:\n    base_path: {self.models}\n    checkpoints: checkpoints\n"
                        f"    loras: loras\n    controlnet: controlnet\n")
        for sub in ("checkpoints", "loras", "controlnet"):
            (self.models / sub).mkdir(parents=True, exist_ok=True)
        return path

    def command(self) -> list[str]:
        dirs = {d: self.work / d for d in ("output", "temp", "input", "user")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)  # --user-directory must exist already
        return [self.py, "main.py", *LAUNCH_FLAGS, "--port", str(self.port),
                "--extra-model-paths-config", str(self.write_model_paths()),
                "--output-directory", str(dirs["output"]), "--temp-directory", str(dirs["temp"]),
                "--input-directory", str(dirs["input"]), "--user-directory", str(dirs["user"]),
                # the default database path is <ComfyUI>/user/comfyui.db whatever --user-directory says
                "--database-url", f"sqlite:///{dirs['user'] / 'comfyui.db'}",
                *self.extra_flags]

    # ---- process -----------------------------------------------------------------------------
    def start(self, timeout: float = 300) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.checkpoints = self.make_models()
        self.log(f"checkpoints ready in {time.monotonic() - t0:.0f}s: {self.checkpoints}")
        self.install_link()
        cmd = self.command()
        self.log(f"launching ComfyUI: cd {self.dir} && {' '.join(cmd)}")
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=self.env(), stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ComfyError("setup", f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                r = self.session.get(f"{self.url}/object_info/CheckpointLoaderSimple", timeout=10)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise ComfyError("setup", f"ComfyUI did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def uninstall(self) -> None:
        self.remove_link()

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            return self.get("/system_stats", timeout=30).status_code == 200
        except Exception:
            return False

    # ---- HTTP --------------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 60, **kw):
        return self.session.get(f"{self.url}{path}", timeout=timeout, **kw)

    def post(self, path: str, payload=None, timeout: float = 60):
        return self.session.post(f"{self.url}{path}", data=json.dumps(payload).encode(), timeout=timeout,
                                 headers={"Content-Type": "application/json"})

    def object_info(self, node_class: str | None = None) -> dict:
        r = self.get("/object_info" + (f"/{node_class}" if node_class else ""))
        r.raise_for_status()
        return r.json()

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """``POST /free``: ComfyUI unloads its models and (``free_memory``) drops every cached node output
        before the next prompt runs."""
        self.post("/free", {"unload_models": unload_models, "free_memory": free_memory})

    # ---- workflows -------------------------------------------------------------------------
    def queue(self, workflow: dict, *, rerun: bool = True) -> str:
        """``POST /prompt``; the prompt id. Raises :class:`ComfyError` ("validation") when ComfyUI refuses it.

        ComfyUI caches every node's output by its inputs, so the same workflow queued twice runs nothing
        the second time. ``rerun`` (the default) gives every node except the checkpoint loaders a fresh
        :data:`NONCE_INPUT`, so they all run again on the loaders' cached (shared) model: what a user
        gets after changing anything, and what shows a patch left on the shared model."""
        workflow = copy.deepcopy(workflow)
        if rerun:
            nonce = uuid.uuid4().hex
            for node in workflow.values():
                if "Loader" not in node.get("class_type", ""):
                    node.setdefault("inputs", {})[NONCE_INPUT] = nonce
        r = self.post("/prompt", {"prompt": workflow, "client_id": self.client_id})
        try:
            body = r.json()
        except ValueError:
            body = {"error": {"message": r.text[:2000]}}
        if r.status_code != 200:
            err = body.get("error", {})
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise ComfyError("validation", message, body, body.get("node_errors", {}))
        if body.get("node_errors"):
            # ComfyUI queues the outputs that validated and reports the others here
            raise ComfyError("validation", "some output nodes failed validation", body, body["node_errors"])
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600, poll: float = 0.1) -> dict:
        """The history entry of ``prompt_id`` once it has finished (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get(f"/history/{prompt_id}")
            r.raise_for_status()
            entry = r.json().get(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise ComfyError("execution", f"ComfyUI died (exit {self.proc.returncode}):\n{self.log_tail()}")
            time.sleep(poll)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f}s:\n{self.log_tail(3000)}")

    def run(self, workflow: dict, *, rerun: bool = True, timeout: float = 600) -> Result:
        """Queue ``workflow``, wait for it, and read its output images. Raises :class:`ComfyError` when
        ComfyUI refuses the workflow or it fails while running."""
        t0 = time.monotonic()
        prompt_id = self.queue(workflow, rerun=rerun)
        entry = self.wait(prompt_id, timeout=timeout)
        status = entry.get("status") or {}
        error = execution_error(status)
        if error is not None:
            raise ComfyError("execution", error.get("exception_message", "").strip() or "execution failed", error)
        if status.get("status_str") not in (None, "success"):
            raise ComfyError("execution", f"status {status.get('status_str')}: {status.get('messages')}", status)
        res = Result(prompt_id, entry.get("outputs", {}), status=status)
        for node_id in sorted(res.outputs, key=_node_order):
            for img in res.outputs[node_id].get("images", []):
                png = self.view(img)
                res.pngs.append(png)
                res.images.append(to_array(png))
        res.seconds = time.monotonic() - t0
        return res

    def images(self, workflow: dict, **kw) -> list:
        return self.run(workflow, **kw).images

    def error_of(self, workflow: dict, *, timeout: float = 600) -> ComfyError:
        """The error ComfyUI gives for a workflow that must fail (validation or execution); fails the
        calling test (AssertionError) when the workflow succeeds instead."""
        try:
            res = self.run(workflow, timeout=timeout)
        except ComfyError as e:
            if e.kind == "setup":
                raise
            return e
        raise AssertionError(f"the workflow succeeded ({len(res.images)} images) where an error was expected")

    def view(self, image: dict) -> bytes:
        r = self.get("/view", params={"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                                      "type": image.get("type", "output")})
        r.raise_for_status()
        return r.content


def execution_error(status: dict) -> dict | None:
    """The ``execution_error`` message of a history status (``node_id``, ``node_type``,
    ``exception_type``, ``exception_message``, ``traceback``, ...), or None. An interrupted run has an
    ``execution_interrupted`` message instead, returned with ``exception_message`` "interrupted"."""
    for name, data in status.get("messages", []) or []:
        if name == "execution_error":
            return data
        if name == "execution_interrupted":
            return dict(data, exception_message="interrupted", exception_type="interrupted")
    return None


def _node_order(node_id: str):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def to_array(png: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).copy()


# ---- workflows --------------------------------------------------------------------------------

def plain_workflow(ckpt: str = SD15, *, prompt: str = "a landscape", negative: str = "", seed: int = 1234,
                   steps: int = 3, cfg: float = 7.0, sampler: str = "euler", scheduler: str = "normal",
                   width: int = 64, height: int = 64, batch: int = 1, denoise: float = 1.0,
                   save: bool = True) -> dict:
    """CheckpointLoaderSimple -> CLIPTextEncode (positive, negative) -> EmptyLatentImage -> KSampler ->
    VAEDecode -> SaveImage (or PreviewImage). Node ids are fixed ("1".."7") so tests can rewire them."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
            "denoise": denoise}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": ({"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "regedit_e2e"}} if save
              else {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}),
    }


def max_diff(a, b) -> int:
    import numpy as np

    if a.shape != b.shape:
        return 255
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
