"""RegEdit's ComfyUI nodes: each takes and returns ComfyUI's own types and calls the ComfyUI adapter
(``lib_regedit/comfy``), which runs the engine over the model interface. Bad input raises RegEdit's
error, whose message names the field and the fix; ComfyUI shows it in its error dialog."""

from __future__ import annotations

import comfy.samplers
import folder_paths

from lib_regedit.comfy import image_tasks, pair, shapesworld
from lib_regedit.comfy import lime as lime_edit
from lib_regedit.comfy.host import checkpoint as comfy_checkpoint
from lib_regedit.comfy.regions import BACKGROUNDS, FROM_DOCUMENT, MODES, SWITCH, document_text, region_document, \
    regions_model
from lib_regedit.documents.drag import EXAMPLE as DRAG_EXAMPLE

CATEGORY = "RegEdit"
EXAMPLE_REGIONS = ('{"regions": [{"x": 0.05, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a red circle"}, '
                   '{"x": 0.55, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a blue square"}]}')
INVERSIONS = ("negative", "ddim")
# the inputs several nodes share, as ComfyUI's own nodes declare them
SEED = ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff})
STEPS = ("INT", {"default": 20, "min": 1, "max": 1000})
CFG = ("FLOAT", {"default": 7.5, "min": 0.0, "max": 30.0, "step": 0.1})
SIZE = ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8})
NEGATIVE = ("STRING", {"default": ""})


def _sampler_inputs() -> dict:
    """ComfyUI's sampler and scheduler choices, as KSampler offers them."""
    return {"sampler_name": (comfy.samplers.KSampler.SAMPLERS,), "scheduler": (comfy.samplers.KSampler.SCHEDULERS,)}


def _document_input(default: str) -> tuple:
    return ("STRING", {"multiline": True, "default": default})


class Regions:
    """Region prompts (MultiDiffusion fusion inside cross-attention), keyword selection and KSSA on a MODEL:
    its clone goes to any sampler node."""

    DESCRIPTION = ("Boxes, each with its own prompt: each object lands in its box. Draw the boxes on the node, "
                   "or write the region document. Connect the MODEL to your sampler.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "clip": ("CLIP",),
            "regions": _document_input(EXAMPLE_REGIONS),
            "mode": (list(MODES), {"default": FROM_DOCUMENT,
                                   "tooltip": "attention: one UNet pass for all regions; latent: a pass per region"}),
            "background_prompt": (list(BACKGROUNDS), {"default": FROM_DOCUMENT,
                                                      "tooltip": "what the area outside the boxes says"}),
            "kssa": (list(SWITCH), {"default": FROM_DOCUMENT,
                                    "tooltip": "keyword-selected self-attention: sharper objects in long prompts"}),
        }}

    RETURN_TYPES = ("MODEL", "STRING")
    RETURN_NAMES = ("model", "document")
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, regions, mode, background_prompt, kssa):
        document = region_document(regions, mode=mode, background=background_prompt, kssa=kssa)
        checkpoint = comfy_checkpoint(model, clip, None, 512, 512)
        return regions_model(model, checkpoint, document), document_text(document)


class LayoutInit:
    """A starting LATENT that already holds the layout: the boxes' sketch, DDIM-inverted, mixed with the seed's
    noise. Sample it with KSamplerAdvanced, add_noise "disable"."""

    DESCRIPTION = "Layout init: a start latent with the boxes in it. Sample with KSamplerAdvanced, add_noise: disable."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
            "regions": _document_input(EXAMPLE_REGIONS),
            "width": SIZE,
            "height": SIZE,
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            "seed": SEED,
            "steps": ("INT", dict(STEPS[1], tooltip="the inversion's steps")),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, vae, regions, width, height, batch_size, seed, steps):
        document = region_document(regions)
        samples = image_tasks.layout_latent(model, clip, vae, document, width=width, height=height,
                                            batch_size=batch_size, seed=seed, steps=steps)
        return ({"samples": samples},)


class Drag:
    """RegionDrag: handle regions moved onto targets, gradient-free, in about the time of one generation."""

    DESCRIPTION = "RegionDrag: move the drag document's handle regions (boxes, polygons, brush strokes) onto targets."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",), "image": ("IMAGE",),
            "drag": _document_input(DRAG_EXAMPLE),
            "prompt": ("STRING", {"default": "", "tooltip": "what the picture shows (may stay empty)"}),
            "seed": SEED,
            "steps": STEPS,
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, vae, image, drag, prompt, seed, steps):
        return (image_tasks.drag_image(model, clip, vae, image, drag, prompt=prompt, seed=seed, steps=steps),)


class PictureEdit:
    """A region edit of a picture (MRGD): add, remove or change one region's object, the rest kept."""

    DESCRIPTION = ("Edit a picture region by region: the document's regions describe the picture, and one region's "
                   "\"edit\" (add, remove, change) says what changes.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",), "image": ("IMAGE",),
            "regions": _document_input('{"regions": [{"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a red circle", '
                                       '"edit": "change", "target_prompt": "a blue circle"}]}'),
            "inversion": (list(INVERSIONS), {"default": "negative"}),
            "negative_prompt": NEGATIVE,
            "seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
        }}

    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("edit", "reconstruction")
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, vae, image, regions, inversion, negative_prompt, seed, steps, cfg):
        sources, targets = image_tasks.picture_edit(model, clip, vae, image, regions, inversion=inversion, seed=seed,
                                                    steps=steps, cfg=cfg, negative_prompt=negative_prompt)
        return targets, sources


class EditPair:
    """An edit pair (MRGD): a source and a target from one document with edit roles, the rest kept."""

    DESCRIPTION = ("Add, remove or change one region's object: the source image and the edited target, sampled as "
                   "one batch. The target keeps the source outside the edited regions.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
            "regions": _document_input('{"regions": [{"x": 0.05, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a red circle"},'
                                       ' {"x": 0.55, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a blue square", '
                                       '"edit": "remove"}]}'),
            "prompt": ("STRING", {"default": "", "tooltip": "the source's whole prompt (empty: the document's)"}),
            "negative_prompt": NEGATIVE,
            "width": SIZE,
            "height": SIZE,
            "pairs": ("INT", {"default": 1, "min": 1, "max": 32}),
            "seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            **_sampler_inputs(),
        }}

    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("target", "source")
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, vae, regions, prompt, negative_prompt, width, height, pairs, seed, steps, cfg,
              sampler_name, scheduler):
        sources, targets = pair.edit_pair(model, clip, vae, regions, prompt=prompt, negative_prompt=negative_prompt,
                                          width=width, height=height, pairs=pairs, seed=seed, steps=steps, cfg=cfg,
                                          sampler_name=sampler_name, scheduler=scheduler)
        return targets, sources


class Lime:
    """LIME: a localized instruction edit. The region of interest is found from the model's own features and
    attention, and the cross-attention is regularised inside it; outside it the picture stays as it was."""

    DESCRIPTION = ("Edit a picture from an instruction (instruct-pix2pix checkpoint) or an edit prompt (ordinary "
                   "checkpoint, img2img at denoise); the region is found automatically and returned as a MASK.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",), "image": ("IMAGE",),
            "prompt": ("STRING", {"multiline": True, "default": "make the circle blue"}),
            "negative_prompt": NEGATIVE,
            "lime": ("STRING", {"multiline": True, "default": "{}",
                                "tooltip": 'LIME\'s settings; {"roi": [{"x":..,"y":..,"w":..,"h":..}]} gives the region'}),
            "seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            "denoise": ("FLOAT", {"default": 0.75, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "ordinary checkpoints only (img2img); instruct-pix2pix samples from noise"}),
            **_sampler_inputs(),
        }}

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "region")
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, model, clip, vae, image, prompt, negative_prompt, lime, seed, steps, cfg, denoise, sampler_name,
              scheduler):
        return lime_edit.lime_edit(model, clip, vae, image, prompt, negative_prompt=negative_prompt, lime=lime,
                                   seed=seed, steps=steps, cfg=cfg, denoise=denoise, sampler_name=sampler_name,
                                   scheduler=scheduler)


class ShapesWorldLoader:
    """The bundled ShapesWorld models (a small SD 1.x-architecture model trained on coloured shapes, and its
    instruct-pix2pix variant): ComfyUI's own loader cannot detect their shrunk UNet and text encoder."""

    DESCRIPTION = "Load RegEdit's bundled ShapesWorld model (64x64 pictures of coloured shapes) as MODEL, CLIP, VAE."

    @classmethod
    def INPUT_TYPES(cls):
        names = list(shapesworld.NAMES) + shapesworld.installed_names(folder_paths.get_filename_list("checkpoints"))
        return {"required": {"name": (names, {"default": names[0]})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, name):
        return shapesworld.load(name)


class EmptyLatent:
    """An empty LATENT of the size a VAE makes (ComfyUI's Empty Latent Image assumes 8 pixels per latent
    pixel; ShapesWorld's VAE has 4)."""

    DESCRIPTION = "An empty latent for a width x height picture through this VAE (any downscale factor)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("VAE",),
            "width": ("INT", {"default": 64, "min": 16, "max": 8192, "step": 4}),
            "height": ("INT", {"default": 64, "min": 16, "max": 8192, "step": 4}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"
    CATEGORY = CATEGORY

    def make(self, vae, width, height, batch_size):
        return (image_tasks.empty_latent(vae, width, height, batch_size),)


NODE_CLASS_MAPPINGS = {"RegEditRegions": Regions, "RegEditLayoutInit": LayoutInit, "RegEditDrag": Drag,
                       "RegEditPictureEdit": PictureEdit, "RegEditEditPair": EditPair, "RegEditLime": Lime,
                       "RegEditShapesWorldLoader": ShapesWorldLoader, "RegEditEmptyLatent": EmptyLatent}
NODE_DISPLAY_NAME_MAPPINGS = {"RegEditRegions": "RegEdit Regions", "RegEditLayoutInit": "RegEdit Layout Init",
                              "RegEditDrag": "RegEdit Drag (RegionDrag)", "RegEditPictureEdit": "RegEdit Picture Edit", "RegEditEditPair": "RegEdit Edit Pair",
                              "RegEditLime": "RegEdit LIME",
                              "RegEditShapesWorldLoader": "RegEdit ShapesWorld Loader",
                              "RegEditEmptyLatent": "RegEdit Empty Latent"}
