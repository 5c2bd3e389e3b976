// RegEdit: the region canvas. Boxes, polygons and brush shapes with their own prompts, or the colours of
// a mask picture, drawn over a blank canvas with the output's aspect ratio (txt2img) or over the init
// image (img2img). The polygon and brush tools are the drag panel's (javascript/regedit_shapes.js). The canvas reads and writes the
// region document (see lib_regedit/documents/region.py) in the hidden textbox #regedit_doc_<tab>.
// In img2img one canvas serves three tasks, moved into the one shown: Regions (#regedit_canvas_img2img:
// prompts per box), LIME (#regedit_canvas_lime_img2img: the boxes are LIME's region, nothing else) and
// Edit by regions (#regedit_canvas_edit_img2img: the boxes' edit roles too).
(function () {
    "use strict";

    const TABS = ["txt2img", "img2img"];
    const MAX_REGIONS = 32;
    const CORNER_PX = 8;
    const EDGE_PX = 5;
    const MIN_DRAW_PX = 4;
    const GRID = 8; // latent grid in image pixels
    const VERTEX_PX = 8; // a click this near a polygon's first vertex closes it
    const STROKE_STEP_PX = 2.5;
    const MAX_MASK_COLOURS = 12;
    const MIN_COLOUR_SHARE = 0.005; // a mask picture's colours below this share of it are edges, not regions
    const BACKGROUND_SHARE = 0.3; // its commonest colour at this share or more is its background
    // The shape vocabulary shared with the drag panel, looked up when used (scripts load in name order).
    const S = () => window.RegEditShapes;
    const HELP = "Drag on the canvas to draw a box, then type its prompt (Shift+drag draws over other boxes). " +
        "Drag a box to move it, its edges or corners to resize it. On the canvas, Delete removes the selected box, " +
        "arrow keys nudge it (Shift: 8\u00d7), Esc deselects; Esc in a text field gives the keys back to the canvas. " +
        "Ctrl+Z / Ctrl+Y (or Ctrl+Shift+Z) undo and redo. Polygon: click its vertices, then click the first one, " +
        "double-click or press Enter. Brush: paint, then press Enter. Mask picture: a PNG in flat colours, one region " +
        "per colour.";
    // img2img's tasks that use boxes, and the host each shows them in (the Regions task's is the panel's own).
    const SLOTS = {lime: "regedit_canvas_lime_img2img", edit: "regedit_canvas_edit_img2img"};

    const panels = {};

    function defaults() {
        return {prompt: "", negative_prompt: "", weight: 1, feather: 0.03, role: "object", keywords: []};
    }

    function finite(v, fallback) {
        const n = typeof v === "string" ? parseFloat(v) : v;
        return typeof n === "number" && isFinite(n) ? n : fallback;
    }

    // A region from the field, with numbers made safe to draw; unknown keys are kept as they are.
    function normalise(raw) {
        const U = window.RegEditUI;
        const r = Object.assign({x: 0, y: 0, w: 0, h: 0}, defaults(), raw);
        const bg = r.role === "background";
        r.x = U.clamp(finite(raw.x, 0), 0, 1);
        r.y = U.clamp(finite(raw.y, 0), 0, 1);
        r.w = U.clamp(finite(raw.w, bg ? 1 : 0.1), 0, 1 - r.x);
        r.h = U.clamp(finite(raw.h, bg ? 1 : 0.1), 0, 1 - r.y);
        if (typeof r.prompt !== "string") r.prompt = String(r.prompt);
        if (typeof r.negative_prompt !== "string") r.negative_prompt = String(r.negative_prompt || "");
        if (!Array.isArray(r.keywords)) r.keywords = [];
        if (EDITS.indexOf(r.edit) < 0) delete r.edit;
        if (typeof r.target_prompt !== "string") delete r.target_prompt;
        if (raw.shape !== undefined && raw.shape !== null) {
            // a shape that cannot be drawn is kept as written: the engine's message says what is wrong
            r.shape = S().cleanShape(raw.shape) || raw.shape;
            setBox(r);
        } else if (typeof raw.colour === "string") {
            Object.assign(r, {x: 0, y: 0, w: 0, h: 0});
        }
        return r;
    }

    // A shape region's box is its bounding box (shown, and where its label goes).
    function setBox(r) {
        if (!r.shape || !r.shape.type || !(r.shape.points || r.shape.strokes)) {
            Object.assign(r, {x: 0, y: 0, w: 1, h: 1});
            return;
        }
        const [x0, y0, x1, y1] = S().shapeBox(r.shape, 1, 1);
        Object.assign(r, {x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0)});
    }

    // A shape region, or a colour of the mask picture: no box of its own.
    function boxless(r) {
        return !!(r.shape || typeof r.colour === "string");
    }

    // Edit roles of an edit pair (MRGD): a box that is "inherent" is in both images.
    const EDITS = ["inherent", "add", "remove", "change"];
    const EDIT_MARKS = {add: " +", remove: " \u2212", change: " \u2192"};

    function serialiseRegion(r) {
        const U = window.RegEditUI;
        const out = Object.assign({}, r);
        if (boxless(r)) {
            delete out.x, delete out.y, delete out.w, delete out.h;
            if (r.shape && r.shape.type && (r.shape.points || r.shape.strokes)) out.shape = S().serialiseShape(r.shape);
            out.weight = finite(r.weight, 1);
            out.feather = finite(r.feather, 0.03);
            if (!out.edit || out.edit === "inherent") delete out.edit;
            if (out.edit !== "change") delete out.target_prompt;
            return out;
        }
        out.x = U.round(U.clamp(r.x, 0, 1), 5);
        out.y = U.round(U.clamp(r.y, 0, 1), 5);
        out.w = Math.max(1e-5, Math.min(U.round(r.w, 5), U.round(1 - out.x, 5)));
        out.h = Math.max(1e-5, Math.min(U.round(r.h, 5), U.round(1 - out.y, 5)));
        out.weight = finite(r.weight, 1);
        out.feather = finite(r.feather, 0.03);
        if (!out.edit || out.edit === "inherent") delete out.edit;
        if (out.edit !== "change") delete out.target_prompt;
        return out;
    }

    // What the form and the status line call a region.
    function kindName(r) {
        if (r.shape) return "Shape";
        return typeof r.colour === "string" ? "Colour" : "Box";
    }

    function snippet(text, n) {
        text = (text || "").replace(/\s+/g, " ").trim();
        return text.length > n ? text.slice(0, n - 1) + "\u2026" : text;
    }

    // The class extends RegEditUI.Panel, so it is made on the first mount (see regedit_common.js).
    function defineRegionCanvas(Panel) {
        return class RegionCanvas extends Panel {
            constructor(tab, host) {
                super(tab, host, {fieldId: "regedit_doc_" + tab, listKey: "regions", fieldName: "region", shapeName: "box",
                    initImage: tab === "img2img", slots: tab === "img2img" ? SLOTS : null});
                this.regions = [];
                this.selected = -1;
                this.snap = false;
                this.hover = null;
                this.formBefore = null;
                this.formPushed = false;
                this.tool = "box";
                this.draft = null; // a polygon or brush shape being drawn (RegEditShapes.Draft)
                this.radiusPx = 16;
                this.hoverPoint = null;
                this.lastFinish = null;
                this.overlay = {key: null, canvas: null};
                this.start();
            }

            // ----- DOM -----
            build() {
                const el = this.U.el;
                this.makeStage("Region canvas. " + HELP);
                this.buttons = Object.assign(this.historyButtons(), {
                    delete: this.button("delete", "Delete box", "Delete the selected box (Delete)", () => this.deleteSelected()),
                    clear: this.button("clear", "Clear all", "Remove every box", () => this.clear()),
                });
                this.snapBox = el("input", {type: "checkbox", class: "regedit-snap", "data-role": "snap"});
                this.snapBox.addEventListener("change", () => {
                    this.snap = this.snapBox.checked;
                    this.render();
                });
                const snapLabel = el("label", {class: "regedit-check", title: "Snap box edges to the 8-pixel latent grid"},
                    [this.snapBox, document.createTextNode(" Snap to 8 px grid")]);
                const tool = (name, label, title) => this.toolButton(name, label, title);
                this.toolButtons = {
                    box: tool("box", "\u25ad Box", "Drag to draw a box"),
                    polygon: tool("polygon", "\u25b3 Polygon", "Click the vertices; click the first one, double-click or press Enter to finish"),
                    brush: tool("brush", "\u270e Brush", "Paint a region, then press Enter"),
                };
                this.buttons.finish = this.button("finish", "Finish shape", "Finish the shape being drawn (Enter)",
                    () => this.finishShape());
                this.radiusInput = el("input", {type: "range", min: "2", max: "96", step: "1", value: String(this.radiusPx),
                    "data-role": "brush-size"});
                this.radiusLabel = el("span", {text: " " + this.radiusPx + " px"});
                this.radiusInput.addEventListener("input", () => {
                    this.radiusPx = parseInt(this.radiusInput.value, 10) || 16;
                    this.radiusLabel.textContent = " " + this.radiusPx + " px";
                });
                const radius = el("label", {class: "regedit-check", title: "Brush radius in pixels of the image"},
                    [document.createTextNode("Brush "), this.radiusInput, this.radiusLabel]);
                this.maskInput = el("input", {type: "file", accept: "image/png,image/*", "data-role": "mask-image",
                    style: "display:none"});
                this.maskInput.addEventListener("change", () => {
                    const file = this.maskInput.files && this.maskInput.files[0];
                    if (file) this.loadMaskFile(file);
                    this.maskInput.value = "";
                });
                this.buttons.mask = this.button("mask", "Mask picture\u2026", "A PNG painted in flat colours: each colour " +
                    "becomes a region (write their prompts)", () => this.maskInput.click());
                const toolbar = el("div", {class: "regedit-toolbar"}, [
                    this.toolButtons.box, this.toolButtons.polygon, this.toolButtons.brush, radius, this.buttons.finish,
                    this.buttons.mask, this.maskInput]);
                const toolbar2 = el("div", {class: "regedit-toolbar"}, [
                    this.buttons.undo, this.buttons.redo, this.buttons.delete, this.buttons.clear, snapLabel]);

                this.chips = el("div", {class: "regedit-chips", role: "list", "aria-label": "Boxes and their prompts"});
                this.form = this.buildForm();
                this.emptyNote = el("div", {class: "regedit-empty"});
                const side = el("div", {class: "regedit-side"}, [this.chips, this.emptyNote, this.form]);
                const body = el("div", {class: "regedit-body"}, [this.stage, side]);
                this.mountRoot("regedit-region-panel", [toolbar, toolbar2, body], HELP);
                this.updateTools();
            }

            buildForm() {
                const el = this.U.el;
                const row = (label, control, hint) => el("label", {class: "regedit-row"},
                    [el("span", {class: "regedit-row-label", text: label, title: hint || ""}), control]);
                this.fields = {
                    prompt: el("textarea", {rows: "3", "data-key": "prompt", placeholder: "what goes in this box"}),
                    negative_prompt: el("textarea", {rows: "2", "data-key": "negative_prompt",
                        placeholder: "negative prompt inside this box (optional)"}),
                    weight: el("input", {type: "number", "data-key": "weight", min: "0.05", max: "10", step: "0.05"}),
                    feather: el("input", {type: "number", "data-key": "feather", min: "0", max: "0.5", step: "0.01"}),
                    role: el("select", {"data-key": "role"}, [
                        el("option", {value: "object", text: "object"}),
                        el("option", {value: "background", text: "background (prompt for the rest)"}),
                    ]),
                    keywords: el("input", {type: "text", "data-key": "keywords", placeholder: "comma-separated (optional)"}),
                    edit: el("select", {"data-key": "edit"}, [
                        el("option", {value: "inherent", text: "keep (in both images)"}),
                        el("option", {value: "add", text: "add (target only)"}),
                        el("option", {value: "remove", text: "remove (source only)"}),
                        el("option", {value: "change", text: "change (to the target prompt)"}),
                    ]),
                    target_prompt: el("textarea", {rows: "2", "data-key": "target_prompt",
                        placeholder: "what this box shows in the edited image"}),
                };
                this.targetRow = row("Target prompt", this.fields.target_prompt,
                    "the changed box's prompt in the edited image");
                this.formTitle = el("div", {class: "regedit-form-title"});
                const form = el("div", {class: "regedit-form"}, [
                    this.formTitle,
                    row("Prompt", this.fields.prompt),
                    row("Negative prompt", this.fields.negative_prompt),
                    el("div", {class: "regedit-row-pair"}, [
                        row("Weight", this.fields.weight, "how strongly this box's prompt counts (> 0, at most 10)"),
                        row("Feather", this.fields.feather, "soft edge width as a fraction of the image (0 to 0.5)"),
                    ]),
                    row("Role", this.fields.role, "a background region's prompt is used outside the boxes"),
                    row("Keywords", this.fields.keywords, "words to sharpen in this box (keyword selection)"),
                    this.editRow = row("Edit", this.fields.edit, "an edit role makes a pair: the source image (in " +
                        "img2img, the picture's reconstruction) and the edited one, where this box's object is added, " +
                        "removed or changed and the rest stays"),
                    this.targetRow,
                ]);
                form.addEventListener("focusin", () => {
                    this.formBefore = this.snapshot();
                    this.formPushed = false;
                });
                form.addEventListener("focusout", () => {
                    this.formBefore = null;
                });
                for (const [key, control] of Object.entries(this.fields)) {
                    control.addEventListener(key === "role" || key === "edit" ? "change" : "input", () => this.onFormInput(key, control));
                    control.addEventListener("change", () => this.updateForm(true));
                    control.addEventListener("keydown", (e) => {
                        if (e.key === "Escape") {
                            control.blur();
                            this.stage.focus({preventScroll: true});
                            e.stopPropagation();
                        }
                    });
                }
                return form;
            }

            onFormInput(key, control) {
                const r = this.regions[this.selected];
                if (!r) return;
                let value = control.value;
                let ok = true;
                if (key === "weight" || key === "feather") {
                    value = parseFloat(value);
                    const hi = key === "weight" ? 10 : 0.5;
                    ok = isFinite(value) && (key === "weight" ? value > 0 : value >= 0) && value <= hi;
                } else if (key === "keywords") {
                    value = value.split(",").map((s) => s.trim()).filter(Boolean);
                }
                control.classList.toggle("regedit-invalid", !ok);
                if (!ok) return;
                if (!this.formPushed) {
                    this.history.push(this.formBefore || this.snapshot());
                    this.formPushed = true;
                }
                r[key] = value;
                this.commit();
            }

            // The boxes' edit roles are shown (and run) in txt2img and in img2img's Edit by regions task.
            showsEdits() {
                return this.tab === "txt2img" || this.task === "edit";
            }

            // LIME's task: the boxes are its region, they need no prompt.
            boxesOnly() {
                return this.task === "lime";
            }

            placed() {
                this.updateForm(true);
                this.render();
            }

            updateForm(force) {
                const r = this.boxesOnly() ? null : this.regions[this.selected];
                this.form.style.display = r ? "" : "none";
                this.emptyNote.style.display = r ? "none" : "";
                this.emptyNote.textContent = this.boxesOnly()
                    ? "LIME edits inside these boxes instead of the region it finds; with none, it finds one."
                    : this.regions.length ? "Select a box to write its prompt." : "Drag on the canvas to draw a box.";
                this.buttons.delete.disabled = !r;
                this.buttons.undo.disabled = !this.history.canUndo;
                this.buttons.redo.disabled = !this.history.canRedo;
                this.buttons.clear.disabled = !this.regions.length;
                this.updateTools();
                this.updateChips();
                if (!r) return;
                const colour = this.colour(this.selected);
                this.formTitle.textContent = kindName(r) + " " + (this.selected + 1) + "  \u00b7  regions[" + this.selected + "]";
                this.formTitle.style.borderColor = colour;
                const values = {
                    prompt: r.prompt, negative_prompt: r.negative_prompt, weight: String(r.weight),
                    feather: String(r.feather), role: r.role === "background" ? "background" : "object",
                    keywords: (r.keywords || []).join(", "),
                    edit: EDITS.indexOf(r.edit) >= 0 ? r.edit : "inherent",
                    target_prompt: r.target_prompt || "",
                };
                this.editRow.style.display = this.showsEdits() ? "" : "none";
                this.targetRow.style.display = this.showsEdits() && values.edit === "change" ? "" : "none";
                for (const [key, control] of Object.entries(this.fields)) {
                    if (!force && document.activeElement === control) continue;
                    if (control.value !== values[key]) control.value = values[key];
                    control.classList.remove("regedit-invalid");
                }
            }

            // The list of boxes beside the canvas, one row each: its number (and role) and its prompt.
            // A click selects the box and puts the cursor in its prompt. Rows are updated in place: a
            // row rebuilt between a press and its release (the prompt field's change event fires on the
            // press) would lose the click.
            updateChips() {
                const el = this.U.el;
                const rows = this.chips.children;
                while (rows.length > this.regions.length) this.chips.removeChild(this.chips.lastChild);
                while (rows.length < this.regions.length) {
                    const i = rows.length;
                    this.chips.appendChild(el("button", {
                        type: "button", class: "regedit-chip", "data-index": String(i), role: "listitem",
                        onclick: () => {
                            this.select(i);
                            this.focusPrompt();
                        },
                    }, [el("span", {class: "regedit-chip-number"}), el("span", {class: "regedit-chip-prompt"})]));
                }
                this.regions.forEach((r, i) => {
                    const chip = rows[i];
                    const mark = (r.role === "background" ? " bg" : "") + (r.shape ? " " + S().describe(r.shape) : "") +
                        (typeof r.colour === "string" && !r.shape ? " \u25a0 " + r.colour : "") +
                        (this.showsEdits() ? EDIT_MARKS[r.edit] || "" : "");
                    chip.firstChild.textContent = String(i + 1) + mark;
                    chip.lastChild.textContent = this.boxesOnly() ? "LIME's region" : snippet(r.prompt, 60) ||
                        (r.role === "background" ? "(the rest of the image)" : "(no prompt yet)");
                    chip.title = r.prompt || "no prompt yet";
                    chip.classList.toggle("selected", i === this.selected);
                    chip.classList.toggle("regedit-chip-empty", !this.boxesOnly() && !r.prompt.trim() &&
                        r.role !== "background");
                    chip.style.setProperty("--regedit-colour", this.colour(i));
                });
            }

            // The selected box's prompt field takes the keys (after a box is drawn, or picked in the list).
            focusPrompt() {
                if (this.boxesOnly() || !this.regions[this.selected] || !this.U.isShown(this.fields.prompt)) return;
                this.fields.prompt.focus({preventScroll: true});
            }

            statusParts() {
                const parts = [];
                const shapes = this.regions.filter(boxless).length;
                const boxes = this.regions.length - shapes;
                parts.push(boxes + (boxes === 1 ? " box" : " boxes") + (shapes ? ", " + shapes +
                    (shapes === 1 ? " shape" : " shapes") : "") + " on " + this.out.w + "\u00d7" + this.out.h + " px");
                if (this.draft) {
                    parts.push(this.draft.type === "polygon" ? "polygon: " + this.draft.shape.points.length +
                        " vertices; click the first one, double-click or press Enter to finish"
                        : "brush: " + this.draft.shape.strokes.length + " stroke(s); Enter finishes it");
                }
                const r = this.regions[this.selected];
                if (r && boxless(r)) {
                    parts.push(kindName(r).toLowerCase() + " " + (this.selected + 1) + ": " +
                        (r.shape ? S().describe(r.shape) : r.colour + " in the mask picture"));
                } else if (r) {
                    const px = (v, n) => Math.round(v * n);
                    parts.push("box " + (this.selected + 1) + ": " + px(r.x, this.out.w) + "," + px(r.y, this.out.h) +
                        "  " + px(r.w, this.out.w) + "\u00d7" + px(r.h, this.out.h) + " px");
                }
                const empty = this.regions.map((r, i) => (r.role !== "background" && !r.prompt.trim()) ? i + 1 : 0)
                    .filter(Boolean);
                if (empty.length && !this.boxesOnly()) parts.push("needs a prompt: box " + empty.join(", "));
                const untargeted = this.regions.map((r, i) => (r.edit === "change" && !(r.target_prompt || "").trim())
                    ? i + 1 : 0).filter(Boolean);
                const edits = this.regions.some((r) => r.edit && r.edit !== "inherent");
                if (untargeted.length && this.showsEdits()) parts.push("needs a target prompt: box " + untargeted.join(", "));
                if (edits && this.tab === "txt2img") parts.push("edit pair: txt2img makes the source and the edited image");
                if (this.task === "edit") {
                    parts.push(edits ? "Generate shows the picture's reconstruction and its edit"
                        : "give a box an edit role (add, remove, change)");
                }
                const img = this.images && this.images.image;
                if (img) parts.push("drawn over the " + img.naturalWidth + "\u00d7" + img.naturalHeight + " init image");
                else if (this.images) parts.push("no init image yet");
                return parts;
            }

            // ----- the hidden field -----
            snapshot() {
                return JSON.stringify(this.regions);
            }

            restore(snapshot) {
                this.regions = JSON.parse(snapshot);
                if (this.selected >= this.regions.length) this.selected = -1;
                this.commit(true);
            }

            serialise() {
                if (!this.regions.some((r) => typeof r.colour === "string")) delete this.base.mask_image;
                return this.documentText({prompt: ""}, this.regions.map(serialiseRegion));
            }

            shapeCount() {
                return this.regions.length;
            }

            // Writes the document to the field, redraws, refreshes the side panel.
            commit(refreshForm) {
                this.writeDocument();
                this.render();
                this.updateForm(!!refreshForm);
            }

            load(obj) {
                const raw = Array.isArray(obj.regions) ? obj.regions : [];
                this.regions = raw.filter((r) => r && typeof r === "object" && !Array.isArray(r)).map(normalise);
                return null;
            }

            loaded() {
                if (this.selected >= this.regions.length) this.selected = -1;
                this.render();
                this.updateForm(true);
            }

            // ----- geometry -----
            snapTo(v, n) {
                v = this.U.clamp(v, 0, 1);
                if (!this.snap) return v;
                const g = GRID / n;
                return this.U.clamp(Math.round(v / g) * g, 0, 1);
            }

            boxPx(r) {
                return {x: r.x * this.size.w, y: r.y * this.size.h, w: r.w * this.size.w, h: r.h * this.size.h};
            }

            hitTest(p, drawOnly) {
                if (drawOnly) return null;
                const order = [];
                if (this.selected >= 0) order.push(this.selected);
                for (let i = this.regions.length - 1; i >= 0; i--) if (i !== this.selected) order.push(i);
                for (const i of order) {
                    const r = this.regions[i];
                    if (boxless(r)) { // a shape moves by its inside; a mask picture's colour is picked in the list
                        const drawable = r.shape && r.shape.type && (r.shape.points || r.shape.strokes);
                        if (drawable && S().hitShape(r.shape, [p.x, p.y], this.size.w, this.size.h, 4)) {
                            return {index: i, mode: "move"};
                        }
                        continue;
                    }
                    const b = this.boxPx(r);
                    const near = (a, v, t) => Math.abs(a - v) <= t;
                    const l = b.x, rr = b.x + b.w, t = b.y, bt = b.y + b.h;
                    // Small boxes get smaller grab zones, so that their inside still moves them.
                    const small = Math.min(b.w, b.h);
                    const cornerPx = Math.min(CORNER_PX, Math.max(3, small / 4));
                    const edgePx = Math.min(EDGE_PX, Math.max(2, small / 5));
                    const corners = [["nw", l, t], ["ne", rr, t], ["sw", l, bt], ["se", rr, bt]];
                    for (const [mode, cx, cy] of corners) {
                        if (near(p.x, cx, cornerPx) && near(p.y, cy, cornerPx)) return {index: i, mode};
                    }
                    const inY = p.y >= t - edgePx && p.y <= bt + edgePx;
                    const inX = p.x >= l - edgePx && p.x <= rr + edgePx;
                    if (inY && near(p.x, l, edgePx)) return {index: i, mode: "w"};
                    if (inY && near(p.x, rr, edgePx)) return {index: i, mode: "e"};
                    if (inX && near(p.y, t, edgePx)) return {index: i, mode: "n"};
                    if (inX && near(p.y, bt, edgePx)) return {index: i, mode: "s"};
                    // A background region covers what the boxes do not: only its edges are handles.
                    if (r.role !== "background" && p.x > l && p.x < rr && p.y > t && p.y < bt) return {index: i, mode: "move"};
                }
                return null;
            }

            // ----- pointer -----
            onPointerDown(e) {
                if (this.tool !== "box") {
                    this.drawShapeDown(e);
                    return;
                }
                const p = this.pointerPx(e);
                const hit = this.hitTest(p, e.shiftKey);
                const before = this.snapshot();
                if (hit) {
                    this.select(hit.index);
                    this.op = {kind: hit.mode, index: hit.index, start: p, orig: Object.assign({}, this.regions[hit.index]),
                        before, changed: false};
                } else {
                    if (this.regions.length >= MAX_REGIONS) {
                        this.status.textContent = "At most " + MAX_REGIONS + " boxes; delete one to draw another.";
                        return;
                    }
                    this.op = {kind: "draw", start: p, cur: p, before};
                }
                this.canvas.setPointerCapture(e.pointerId);
                e.preventDefault();
            }

            onPointerMove(e) {
                const p = this.pointerPx(e);
                if (this.tool !== "box") {
                    this.hoverPoint = this.fraction(p);
                    const draft = this.draft;
                    if (draft && draft.stroke) {
                        if (draft.extendStroke(this.hoverPoint, (a, b) => this.distPx(a, b), STROKE_STEP_PX)) this.render();
                    } else if (draft && draft.type === "polygon") {
                        this.render();
                    }
                    return;
                }
                const op = this.op;
                if (!op) {
                    const hit = this.hitTest(p, e.shiftKey);
                    const cursors = {move: "move", n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize",
                        nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize"};
                    this.canvas.style.cursor = hit ? cursors[hit.mode] : "crosshair";
                    this.hover = hit;
                    return;
                }
                const U = this.U;
                const W = this.size.w;
                const H = this.size.h;
                if (op.kind === "draw") {
                    op.cur = p;
                    this.render();
                    return;
                }
                const dx = (p.x - op.start.x) / W;
                const dy = (p.y - op.start.y) / H;
                const o = op.orig;
                const r = this.regions[op.index];
                if (op.kind === "move" && boxless(o)) {
                    r.shape = S().translated(o.shape, dx, dy);
                    setBox(r);
                } else if (op.kind === "move") {
                    let x = U.clamp(o.x + dx, 0, 1 - o.w);
                    let y = U.clamp(o.y + dy, 0, 1 - o.h);
                    if (this.snap) {
                        x = U.clamp(this.snapTo(x, this.out.w), 0, 1 - o.w);
                        y = U.clamp(this.snapTo(y, this.out.h), 0, 1 - o.h);
                    }
                    r.x = x;
                    r.y = y;
                } else {
                    const minW = this.snap ? GRID / this.out.w : MIN_DRAW_PX / W;
                    const minH = this.snap ? GRID / this.out.h : MIN_DRAW_PX / H;
                    let l = o.x;
                    let rt = o.x + o.w;
                    let t = o.y;
                    let b = o.y + o.h;
                    if (op.kind.includes("w")) l = U.clamp(this.snapTo(o.x + dx, this.out.w), 0, rt - minW);
                    if (op.kind.includes("e")) rt = U.clamp(this.snapTo(o.x + o.w + dx, this.out.w), l + minW, 1);
                    if (op.kind.includes("n")) t = U.clamp(this.snapTo(o.y + dy, this.out.h), 0, b - minH);
                    if (op.kind.includes("s")) b = U.clamp(this.snapTo(o.y + o.h + dy, this.out.h), t + minH, 1);
                    r.x = l;
                    r.y = t;
                    r.w = rt - l;
                    r.h = b - t;
                }
                op.changed = op.changed || r.x !== o.x || r.y !== o.y || r.w !== o.w || r.h !== o.h;
                this.render();
            }

            onPointerUp(e) {
                if (this.draft && this.draft.stroke) {
                    this.draft.endStroke();
                    this.updateTools();
                    this.render();
                    return;
                }
                const op = this.op;
                if (!op) return;
                this.op = null;
                if (op.kind === "draw") {
                    const p = this.pointerPx(e);
                    const box = this.drawnBox(op.start, p);
                    if (!box) {
                        this.select(-1);
                        this.render();
                        return;
                    }
                    this.history.push(op.before);
                    this.regions.push(Object.assign(box, defaults()));
                    this.selected = this.regions.length - 1;
                    this.commit(true);
                    this.focusPrompt(); // a new box needs its prompt: type it now
                    return;
                }
                if (op.changed) {
                    this.history.push(op.before);
                    this.commit(true);
                } else {
                    this.render();
                }
                const r = this.regions[this.selected];
                if (r && r.role !== "background" && !r.prompt.trim()) this.focusPrompt(); // still without a prompt
            }

            cancelOp() {
                if (this.draft && this.draft.stroke) {
                    if (this.draft.cancelStroke()) this.draft = null;
                    this.render();
                    return true;
                }
                const op = this.op;
                if (!op) return false;
                this.op = null;
                if (op.kind !== "draw") Object.assign(this.regions[op.index], op.orig);
                this.render();
                return true;
            }

            onPointerLeave() {
                if (this.hoverPoint) {
                    this.hoverPoint = null;
                    if (this.draft) this.render();
                }
                if (!this.op && this.hover) {
                    this.hover = null;
                    this.canvas.style.cursor = "crosshair";
                }
            }

            // The box spanned by two points (css px), snapped, or null when it is too small to be meant.
            drawnBox(a, b) {
                const W = this.size.w;
                const H = this.size.h;
                if (Math.abs(a.x - b.x) < MIN_DRAW_PX || Math.abs(a.y - b.y) < MIN_DRAW_PX) return null;
                let x0 = this.snapTo(Math.min(a.x, b.x) / W, this.out.w);
                let x1 = this.snapTo(Math.max(a.x, b.x) / W, this.out.w);
                let y0 = this.snapTo(Math.min(a.y, b.y) / H, this.out.h);
                let y1 = this.snapTo(Math.max(a.y, b.y) / H, this.out.h);
                if (x1 <= x0) x1 = Math.min(1, x0 + GRID / this.out.w);
                if (x1 <= x0) x0 = x1 - GRID / this.out.w;
                if (y1 <= y0) y1 = Math.min(1, y0 + GRID / this.out.h);
                if (y1 <= y0) y0 = y1 - GRID / this.out.h;
                return {x: x0, y: y0, w: x1 - x0, h: y1 - y0};
            }

            // ----- commands -----
            select(i) {
                if (i === this.selected) return;
                this.selected = i;
                this.lastNudge = null;
                this.render();
                this.updateForm(true);
            }

            deleteSelected() {
                if (this.selected < 0) return;
                this.history.push(this.snapshot());
                this.regions.splice(this.selected, 1);
                this.selected = -1;
                this.commit(true);
            }

            clear() {
                if (!this.regions.length) return;
                this.history.push(this.snapshot());
                this.regions = [];
                this.selected = -1;
                this.commit(true);
            }

            nudge(dxPx, dyPx) {
                const r = this.regions[this.selected];
                if (!r) return;
                if (typeof r.colour === "string" && !r.shape) return; // the picture's colours stay where painted
                this.nudgeHistory(this.selected);
                if (r.shape) {
                    r.shape = S().translated(r.shape, dxPx / this.out.w, dyPx / this.out.h);
                    setBox(r);
                } else {
                    r.x = this.U.clamp(r.x + dxPx / this.out.w, 0, 1 - r.w);
                    r.y = this.U.clamp(r.y + dyPx / this.out.h, 0, 1 - r.h);
                }
                this.commit(true);
            }

            hasSelection() {
                return this.selected >= 0;
            }

            // Esc: stop the gesture, else drop the shape being drawn, else deselect.
            escape() {
                if (this.cancelOp()) return true;
                if (this.draft) {
                    this.draft = null;
                    this.updateTools();
                    this.render();
                    return true;
                }
                return this.selected >= 0 && (this.select(-1), true);
            }

            // Undo while drawing a shape drops its last vertex or stroke.
            dropDraft() {
                if (!this.draft) return false;
                if (this.draft.dropLast()) this.draft = null;
                this.updateTools();
                this.render();
                return true;
            }

            busy() {
                return !!(this.op || (this.draft && this.draft.stroke));
            }

            // Enter finishes the shape being drawn.
            panelKey(e) {
                if (e.key !== "Enter" || !this.draft) return false;
                this.finishShape();
                return true;
            }

            // ----- the polygon and brush tools -----
            setTool(name) {
                if (this.draft && name !== this.tool) this.draft = null;
                this.tool = name;
                this.op = null;
                this.canvas.style.cursor = "crosshair";
                this.updateTools();
                this.render();
            }

            updateTools() {
                if (!this.toolButtons) return;
                for (const [name, b] of Object.entries(this.toolButtons)) b.classList.toggle("active", name === this.tool);
                this.buttons.finish.disabled = !(this.draft && this.draft.complete());
                this.buttons.undo.disabled = !this.history.canUndo && !this.draft;
            }

            fraction(p) {
                const U = this.U;
                return [U.clamp(p.x / this.size.w, 0, 1), U.clamp(p.y / this.size.h, 0, 1)];
            }

            distPx(a, b) {
                return Math.hypot((a[0] - b[0]) * this.size.w, (a[1] - b[1]) * this.size.h);
            }

            drawShapeDown(e) {
                e.preventDefault();
                const p = this.fraction(this.pointerPx(e));
                const dist = (a, b) => this.distPx(a, b);
                // The second click of a double click that finished a polygon starts nothing new.
                const f = this.lastFinish;
                if (!this.draft && f && Date.now() - f.time < 500 && dist(p, f.point) <= 3) return;
                if (!this.draft && this.regions.length >= MAX_REGIONS) {
                    this.flash("At most " + MAX_REGIONS + " regions; delete one to draw another.");
                    return;
                }
                if (!this.draft) this.draft = new (S().Draft)(this.tool === "polygon" ? "polygon" : "mask");
                if (this.draft.type === "polygon") {
                    if (this.draft.addVertex(p, dist, VERTEX_PX) === "close") {
                        this.lastFinish = {point: p, time: Date.now()};
                        this.finishShape();
                        return;
                    }
                } else if (this.draft.startStroke(p, this.radiusPx / this.out.w)) {
                    this.canvas.setPointerCapture(e.pointerId);
                } else {
                    this.flash("At most " + S().MAX_STROKES + " strokes in one shape; press Enter to finish it.");
                }
                this.updateTools();
                this.render();
            }

            // The shape being drawn becomes a region, selected, its prompt next.
            finishShape() {
                const draft = this.draft;
                if (!draft || !draft.complete()) {
                    if (draft && draft.type === "polygon") this.flash("A polygon needs at least 3 vertices.");
                    return;
                }
                this.history.push(this.snapshot());
                const region = Object.assign({shape: draft.shape}, defaults());
                setBox(region);
                this.draft = null;
                this.regions.push(region);
                this.selected = this.regions.length - 1;
                this.commit(true);
                this.focusPrompt();
            }

            // ----- the mask picture -----
            loadMaskFile(file) {
                const reader = new FileReader();
                reader.onload = () => this.useMaskPicture(String(reader.result));
                reader.readAsDataURL(file);
            }

            // A picture in flat colours (a data URL): each of its colours becomes a region (its commonest
            // colour, at BACKGROUND_SHARE or more, is taken as the background); colours some region
            // already names keep their regions.
            useMaskPicture(url) {
                const img = new Image();
                img.onload = () => {
                    const c = document.createElement("canvas");
                    c.width = img.naturalWidth;
                    c.height = img.naturalHeight;
                    const ctx = c.getContext("2d", {willReadFrequently: true});
                    ctx.drawImage(img, 0, 0);
                    const data = ctx.getImageData(0, 0, c.width, c.height).data;
                    const counts = new Map();
                    let opaque = 0;
                    for (let i = 0; i < data.length; i += 4) {
                        if (data[i + 3] < 128) continue;
                        opaque++;
                        const key = "#" + [data[i], data[i + 1], data[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
                        counts.set(key, (counts.get(key) || 0) + 1);
                    }
                    const colours = [...counts.entries()].filter(([, n]) => n >= MIN_COLOUR_SHARE * opaque)
                        .sort((a, b) => b[1] - a[1]);
                    const notes = [];
                    if (colours.length && colours[0][1] >= BACKGROUND_SHARE * opaque) {
                        notes.push(colours[0][0] + " (" + Math.round(100 * colours[0][1] / opaque) + "%) is the background");
                        colours.shift();
                    }
                    this.history.push(this.snapshot());
                    this.base.mask_image = url;
                    const named = new Set(this.regions.filter((r) => typeof r.colour === "string").map((r) => r.colour));
                    let added = 0;
                    for (const [colour] of colours.slice(0, MAX_MASK_COLOURS)) {
                        if (named.has(colour) || this.regions.length >= MAX_REGIONS) continue;
                        this.regions.push(Object.assign({colour, x: 0, y: 0, w: 0, h: 0}, defaults()));
                        added++;
                    }
                    this.selected = added ? this.regions.length - added : this.selected;
                    this.overlay.key = null;
                    this.commit(true);
                    this.flash("Mask picture " + c.width + "\u00d7" + c.height + ": " + added + " region(s) by colour" +
                        (notes.length ? "; " + notes.join(", ") : "") + ". Write each one's prompt.");
                    this.focusPrompt();
                };
                img.onerror = () => this.flash("That file is not a picture the browser can read.");
                img.src = url;
            }

            // The mask picture over the canvas, from its data URL or the run-length encoding a pasted
            // infotext holds (lib_regedit/documents/mask_picture.py); redrawn when it loads.
            maskOverlay() {
                const m = this.base.mask_image;
                if (!m) return null;
                const key = typeof m === "string" ? m.slice(0, 64) + m.length : JSON.stringify(m).slice(0, 200);
                if (this.overlay.key === key) return this.overlay.canvas;
                this.overlay = {key, canvas: null};
                if (typeof m === "string") {
                    const img = new Image();
                    img.onload = () => {
                        if (this.overlay.key !== key) return;
                        const c = document.createElement("canvas");
                        c.width = img.naturalWidth;
                        c.height = img.naturalHeight;
                        c.getContext("2d").drawImage(img, 0, 0);
                        this.overlay.canvas = c;
                        this.render();
                    };
                    img.src = m.startsWith("data:") ? m : "data:image/png;base64," + m;
                } else if (m && m.runs && m.width > 0 && m.height > 0 && Array.isArray(m.colours)) {
                    const c = document.createElement("canvas");
                    c.width = m.width;
                    c.height = m.height;
                    const ctx = c.getContext("2d");
                    const image = ctx.createImageData(m.width, m.height);
                    const rgb = m.colours.map((h) => [1, 3, 5].map((k) => parseInt(String(h).slice(k, k + 2), 16) || 0));
                    let at = 0;
                    for (const run of String(m.runs).split(",")) {
                        const [label, count] = run.split("*").map(Number);
                        for (let k = 0; k < count && at < m.width * m.height; k++, at++) {
                            if (label > 0 && rgb[label - 1]) image.data.set([...rgb[label - 1], 255], at * 4);
                        }
                    }
                    ctx.putImageData(image, 0, 0);
                    this.overlay.canvas = c;
                }
                return this.overlay.canvas;
            }

            // On the latent grid, arrow keys nudge by its cells.
            nudgeStep(e) {
                return (this.snap ? GRID : 1) * super.nudgeStep(e);
            }

            // ----- drawing -----
            render() {
                const ctx = this.ctx;
                this.updateStatus();
                if (!ctx) return;
                const U = this.U;
                const W = this.size.w;
                const H = this.size.h;
                const image = this.images && this.images.image;
                this.drawBackdrop(ctx, image);
                const overlay = this.maskOverlay();
                if (overlay) {
                    ctx.save();
                    ctx.globalAlpha = 0.45;
                    ctx.imageSmoothingEnabled = false;
                    ctx.drawImage(overlay, 0, 0, W, H);
                    ctx.restore();
                }
                this.drawGrid(ctx, W, H);
                this.regions.forEach((r, i) => {
                    if (i !== this.selected) this.drawBox(ctx, r, i, false);
                });
                if (this.regions[this.selected]) this.drawBox(ctx, this.regions[this.selected], this.selected, true);
                const op = this.op;
                if (op && op.kind === "draw") {
                    const box = this.drawnBox(op.start, op.cur);
                    if (box) {
                        const b = this.boxPx(box);
                        ctx.setLineDash([5, 4]);
                        ctx.strokeStyle = "#fff";
                        ctx.lineWidth = 1.5;
                        ctx.strokeRect(b.x + 0.5, b.y + 0.5, b.w - 1, b.h - 1);
                        ctx.setLineDash([]);
                        ctx.fillStyle = U.hexToRgba(this.colour(this.regions.length), 0.2);
                        ctx.fillRect(b.x, b.y, b.w, b.h);
                    }
                }
                if (this.draft) this.drawDraft(ctx, W, H);
                if (!this.regions.length && !op && !this.draft) this.drawHint(ctx, this.hint(image));
            }

            // The shape being drawn: a polygon's vertices and edges (to the pointer), or the strokes so far.
            drawDraft(ctx, W, H) {
                const shape = this.draft.shape;
                const colour = this.colour(this.regions.length);
                ctx.save();
                if (shape.type === "mask") {
                    S().paintMask(ctx, shape, W, H, this.U.hexToRgba(colour, 0.5));
                } else {
                    const pts = shape.points.concat(this.hoverPoint ? [this.hoverPoint] : []);
                    S().polygonPath(ctx, pts, W, H, false);
                    ctx.setLineDash([5, 4]);
                    ctx.strokeStyle = "#fff";
                    ctx.lineWidth = 1.5;
                    ctx.stroke();
                    ctx.setLineDash([]);
                    ctx.fillStyle = colour;
                    for (const [x, y] of shape.points) ctx.fillRect(x * W - 3, y * H - 3, 6, 6);
                }
                ctx.restore();
            }

            // What the empty canvas says.
            hint(image) {
                const draw = {box: "Drag to draw a box", polygon: "Click a polygon's vertices, then Enter",
                    brush: "Paint a region, then Enter"}[this.tool];
                const lines = [this.boxesOnly() ? draw + " (optional)" : draw];
                if (this.boxesOnly()) lines.push("without one, LIME finds the region itself");
                else if (this.task === "edit") lines.push("then give it an edit role: add, remove or change");
                else lines.push("then type what goes in it");
                if (this.images && !image) lines.push("no init image yet: load one above");
                return lines;
            }

            drawGrid(ctx, W, H) {
                if (!this.snap) return;
                let step = GRID;
                while (step * W / this.out.w < 6) step *= 2;
                ctx.strokeStyle = "rgba(255,255,255,0.12)";
                ctx.lineWidth = 1;
                ctx.beginPath();
                for (let x = step; x < this.out.w; x += step) {
                    const px = Math.round(x * W / this.out.w) + 0.5;
                    ctx.moveTo(px, 0);
                    ctx.lineTo(px, H);
                }
                for (let y = step; y < this.out.h; y += step) {
                    const py = Math.round(y * H / this.out.h) + 0.5;
                    ctx.moveTo(0, py);
                    ctx.lineTo(W, py);
                }
                ctx.stroke();
            }

            drawBox(ctx, r, i, selected) {
                const U = this.U;
                const colour = this.colour(i);
                const b = this.boxPx(r);
                const bg = r.role === "background";
                if (boxless(r)) {
                    const drawable = r.shape && r.shape.type && (r.shape.points || r.shape.strokes);
                    if (!drawable) return; // a mask picture's colour: the picture shows it
                    S().drawShape(ctx, r.shape, this.size.w, this.size.h, colour, selected ? 0.28 : 0.18,
                        selected ? 3 : 2, U.hexToRgba);
                    U.drawLabel(ctx, this.boxesOnly() ? String(i + 1) : (i + 1) + ": " + (snippet(r.prompt, 28) ||
                        "(no prompt)"), b.x + 2, b.y + 2, colour);
                    return;
                }
                if (!bg) {
                    ctx.fillStyle = U.hexToRgba(colour, selected ? 0.28 : 0.18);
                    ctx.fillRect(b.x, b.y, b.w, b.h);
                }
                ctx.setLineDash(bg ? [8, 5] : []);
                ctx.lineWidth = selected ? 3 : 2;
                ctx.strokeStyle = "rgba(0,0,0,0.55)";
                ctx.strokeRect(b.x + 1.5, b.y + 1.5, b.w - 3, b.h - 3);
                ctx.strokeStyle = colour;
                ctx.strokeRect(b.x + 1, b.y + 1, b.w - 2, b.h - 2);
                ctx.setLineDash([]);
                const edits = this.showsEdits();
                const change = edits && r.edit === "change" ? " \u2192 " + (snippet(r.target_prompt, 20) || "?") : "";
                const text = this.boxesOnly() ? String(i + 1) : (i + 1) + (bg ? " background" : "") +
                    (edits && r.edit && r.edit !== "change" && EDIT_MARKS[r.edit] ? " " + r.edit : "") + ": " +
                    (snippet(r.prompt, 28) || "(no prompt)") + change;
                ctx.save();
                ctx.beginPath();
                ctx.rect(b.x, b.y, Math.max(b.w, 24), Math.max(b.h, 16));
                ctx.clip();
                U.drawLabel(ctx, text, b.x + 2, b.y + 2, colour);
                ctx.restore();
                if (!selected) return;
                ctx.fillStyle = "#fff";
                ctx.strokeStyle = "#000";
                ctx.lineWidth = 1;
                const xs = [b.x, b.x + b.w / 2, b.x + b.w];
                const ys = [b.y, b.y + b.h / 2, b.y + b.h];
                for (const x of xs) {
                    for (const y of ys) {
                        if (x === xs[1] && y === ys[1]) continue;
                        ctx.fillRect(x - 4, y - 4, 8, 8);
                        ctx.strokeRect(x - 3.5, y - 3.5, 7, 7);
                    }
                }
            }
        };
    }

    let RegionCanvas = null;

    function mount() {
        const U = window.RegEditUI;
        if (!U) return;
        U.mountPanels(panels, TABS, "regedit_canvas_", "regedit_doc_", (tab, host) => {
            RegionCanvas = RegionCanvas || defineRegionCanvas(U.Panel);
            return new RegionCanvas(tab, host);
        });
    }

    window.RegEditRegionPanels = panels;
    if (typeof onUiLoaded === "function") onUiLoaded(mount);
    if (typeof onAfterUiUpdate === "function") onAfterUiUpdate(mount);
})();
