// RegEdit: helpers shared by the region canvas and the drag panel.
// Plain script loaded by the WebUI; everything is under window.RegEditUI. The panels use it only from
// onUiLoaded/onAfterUiUpdate callbacks (they define their classes, which extend RegEditUI.Panel, on the
// first mount), so the order in which the WebUI loads these files is free.
(function () {
    "use strict";

    // Colour-blind-friendly palette (Okabe-Ito plus two), one colour per region or pair.
    const PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
        "#9467bd", "#8c564b", "#17becf"];

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function byId(id) {
        return app().querySelector("#" + id);
    }

    // The textarea of a gr.Textbox, found by the block's elem_id.
    function fieldTextarea(id) {
        const block = byId(id);
        if (!block) return null;
        return block.matches("textarea, input") ? block : block.querySelector("textarea, input[type=text]");
    }

    // Set a gradio 3.41 textbox value the way a user would, so gradio's bound value follows.
    function writeField(el, value) {
        if (!el || el.value === value) return;
        el.value = value;
        el.dispatchEvent(new Event("input", {bubbles: true}));
    }

    function readNumber(selector, fallback) {
        const el = app().querySelector(selector);
        const v = el ? parseFloat(el.value) : NaN;
        return isFinite(v) && v > 0 ? v : fallback;
    }

    // Output size in pixels from the tab's width and height sliders.
    function outputSize(tab) {
        return {w: readNumber("#" + tab + "_width input", 512), h: readNumber("#" + tab + "_height input", 512)};
    }

    // The image components of img2img's own tabs (img2img, Sketch, Inpaint, Inpaint sketch, Inpaint
    // upload), the same ids in AUTOMATIC1111 and Forge.
    const IMAGE_IDS = ["img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base"];

    // The picture img2img starts from: the image of its tab shown now (gradio 3.41 keeps it in an <img>
    // under the sketch canvases too; Forge's canvas in an <img class="forge-image">), or null. When none
    // of those tabs is laid out (Batch), the first image found.
    function initImage() {
        let first = null;
        for (const id of IMAGE_IDS) {
            const root = byId(id);
            if (!root) continue;
            let img = null;
            for (const candidate of root.querySelectorAll("img")) {
                if (candidate.getAttribute("src")) {
                    img = candidate;
                    break;
                }
            }
            if (root.offsetParent !== null) return img;
            first = first || img;
        }
        return first;
    }

    // Loads an image source once and keeps it; calls onChange when a new image is ready or gone.
    class ImageTracker {
        constructor(onChange) {
            this.src = null;
            this.image = null;
            this.onChange = onChange;
        }

        update(src) {
            src = src || null;
            if (src === this.src) return;
            this.src = src;
            if (!src) {
                this.image = null;
                this.onChange(null);
                return;
            }
            const img = new Image();
            img.onload = () => {
                if (this.src !== src) return;
                this.image = img;
                this.onChange(img);
            };
            img.onerror = () => {
                if (this.src !== src) return;
                this.image = null;
                this.onChange(null);
            };
            img.src = src;
        }
    }

    // Undo/redo over JSON snapshots.
    class History {
        constructor(limit) {
            this.limit = limit || 100;
            this.undoStack = [];
            this.redoStack = [];
        }

        push(snapshot) {
            if (this.undoStack.length && this.undoStack[this.undoStack.length - 1] === snapshot) return;
            this.undoStack.push(snapshot);
            if (this.undoStack.length > this.limit) this.undoStack.shift();
            this.redoStack.length = 0;
        }

        undo(current) {
            if (!this.undoStack.length) return null;
            this.redoStack.push(current);
            return this.undoStack.pop();
        }

        redo(current) {
            if (!this.redoStack.length) return null;
            this.undoStack.push(current);
            return this.redoStack.pop();
        }

        get canUndo() {
            return this.undoStack.length > 0;
        }

        get canRedo() {
            return this.redoStack.length > 0;
        }
    }

    function clamp(v, lo, hi) {
        return v < lo ? lo : v > hi ? hi : v;
    }

    function round(v, digits) {
        const f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    function parseObject(text) {
        if (!text || !text.trim()) return {ok: true, value: null};
        try {
            const value = JSON.parse(text);
            if (value && typeof value === "object" && !Array.isArray(value)) return {ok: true, value};
            return {ok: false, error: "the field does not hold a JSON object"};
        } catch (e) {
            return {ok: false, error: "the field does not hold valid JSON"};
        }
    }

    function el(tag, attrs, children) {
        const node = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (k === "class") node.className = v;
            else if (k === "text") node.textContent = v;
            else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
            else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
        }
        for (const c of children || []) node.appendChild(c);
        return node;
    }

    // True when the element is laid out (not in a hidden tab or a collapsed accordion).
    function isShown(node) {
        return !!(node && node.isConnected && node.offsetParent !== null && node.clientWidth > 0);
    }

    // Key events that belong to a text control, not to the panel's shortcuts.
    function isTextTarget(target) {
        if (!target || !target.tagName) return false;
        const tag = target.tagName.toLowerCase();
        if (tag === "textarea" || tag === "select") return true;
        if (tag !== "input") return !!target.isContentEditable;
        return !["checkbox", "radio", "button", "range"].includes((target.type || "").toLowerCase());
    }

    function isUndoKey(e) {
        return (e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "z";
    }

    function isRedoKey(e) {
        const k = e.key.toLowerCase();
        return (e.ctrlKey || e.metaKey) && !e.altKey && (k === "y" || (e.shiftKey && k === "z"));
    }

    // Size a canvas to css pixels, keeping it sharp on high-density screens; returns the context.
    function sizeCanvas(canvas, cssW, cssH) {
        const dpr = Math.min(window.devicePixelRatio || 1, 2);
        const pw = Math.max(1, Math.round(cssW * dpr));
        const ph = Math.max(1, Math.round(cssH * dpr));
        if (canvas.width !== pw) canvas.width = pw;
        if (canvas.height !== ph) canvas.height = ph;
        canvas.style.width = cssW + "px";
        canvas.style.height = cssH + "px";
        const ctx = canvas.getContext("2d");
        ctx.setTransform(pw / cssW, 0, 0, ph / cssH, 0, 0);
        return ctx;
    }

    // Fit an aspect ratio (w / h) into the available width and a maximum height.
    function fitSize(availableW, aspect, maxH) {
        let w = Math.floor(availableW);
        let h = Math.round(w / aspect);
        if (h > maxH) {
            h = maxH;
            w = Math.round(h * aspect);
        }
        return {w: Math.max(1, w), h: Math.max(1, h)};
    }

    function hexToRgba(hex, alpha) {
        const n = parseInt(hex.slice(1), 16);
        return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
    }

    // Lines of text in the middle of the canvas on a dark pill, legible over any picture: the first
    // line bold (what to do), the others smaller.
    function drawHint(ctx, lines, W, H) {
        if (!lines || !lines.length) return;
        ctx.save();
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        const fonts = lines.map((_, i) => (i ? "12px sans-serif" : "bold 15px sans-serif"));
        const widths = lines.map((line, i) => {
            ctx.font = fonts[i];
            return ctx.measureText(line).width;
        });
        const lineH = 20;
        const w = Math.min(W - 8, Math.max(...widths) + 24);
        const h = lines.length * lineH + 12;
        ctx.fillStyle = "rgba(0,0,0,0.55)";
        ctx.fillRect((W - w) / 2, (H - h) / 2, w, h);
        ctx.fillStyle = "#fff";
        lines.forEach((line, i) => {
            ctx.font = fonts[i];
            ctx.fillText(line, W / 2, (H - h) / 2 + 6 + lineH * (i + 0.5), W - 12);
        });
        ctx.restore();
    }

    function drawLabel(ctx, text, x, y, colour) {
        ctx.font = "bold 12px sans-serif";
        const w = ctx.measureText(text).width + 8;
        ctx.fillStyle = colour;
        ctx.fillRect(x, y, w, 16);
        ctx.fillStyle = "#000";
        ctx.textBaseline = "middle";
        ctx.fillText(text, x + 4, y + 8.5);
        return w;
    }

    // Calls fn every interval ms while the page runs; also re-lays-out on visibility changes.
    function watch(node, fn, interval) {
        const timer = setInterval(fn, interval || 500);
        let observer = null;
        let frame = 0;
        if (typeof ResizeObserver === "function") {
            // Laid out on the next frame, not inside the callback: resizing the canvas there would
            // resize the observed node again and raise a "ResizeObserver loop" error event.
            observer = new ResizeObserver(() => {
                if (!frame) {
                    frame = requestAnimationFrame(() => {
                        frame = 0;
                        fn();
                    });
                }
            });
            observer.observe(node);
        }
        return function stop() {
            clearInterval(timer);
            if (frame) cancelAnimationFrame(frame);
            if (observer) observer.disconnect();
        };
    }

    // ----- the panels' common part -----

    const MAX_CANVAS_H = 512;
    const NUDGE_MERGE_MS = 800;
    const FLASH_MS = 4000;
    const ARROWS = new Map([["ArrowLeft", [-1, 0]], ["ArrowRight", [1, 0]], ["ArrowUp", [0, -1]], ["ArrowDown", [0, 1]]]);

    // What the region canvas and the drag panel share: a canvas over the output (or over the init
    // image) that edits a JSON document kept in a hidden gradio textbox, with undo, a status line,
    // keyboard shortcuts, and polling that follows the page. A subclass sets up its own state, calls
    // start(), and provides:
    //   build()               its DOM: makeStage() first, mountRoot() last
    //   snapshot()            its shapes as a JSON string; restore(snapshot) puts them back and commits
    //   serialise()           the document's text (documentText() writes it)
    //   shapeCount()          how many finished shapes the document holds
    //   load(obj)             takes the shapes of a parsed document; returns an error to show, or null
    //   loaded()              redraws after load()
    //   statusParts()         the status line after the field's error
    //   render(), cancelOp(), hasSelection(), deleteSelected(), escape(), nudge(dxPx, dyPx),
    //   onPointerDown(e), onPointerMove(e), onPointerUp(e), onPointerLeave()
    // and may override dropDraft(), panelKey(e), nudgeStep(e) and busy().
    class Panel {
        // options: fieldId (the hidden textbox's elem_id), listKey (the document's list of shapes),
        // fieldName and shapeName (for the status line), initImage (draw over the img2img init image).
        constructor(tab, host, options) {
            this.U = RegEditUI;
            this.tab = tab;
            this.host = host;
            this.fieldId = options.fieldId;
            this.listKey = options.listKey;
            this.fieldName = options.fieldName;
            this.shapeName = options.shapeName;
            this.base = {};
            this.history = new History(100);
            this.lastValue = null;
            this.fieldError = null;
            this.hadShapes = false;
            this.flashText = null;
            this.flashUntil = 0;
            this.size = {w: 0, h: 0};
            this.out = outputSize(tab);
            this.op = null;
            this.lastNudge = null;
            this.ctx = null;
            this.images = options.initImage ? new ImageTracker(() => this.refresh()) : null;
            // Where the panel may be shown: its host, and other hosts by the task they show (img2img's
            // region canvas serves the Regions, LIME and Edit by regions tasks: one panel, moved).
            this.slots = Object.assign({[options.task || "regions"]: null}, options.slots || {});
            this.task = options.task || "regions";
        }

        // Builds the DOM, reads the field, then follows the page.
        start() {
            this.build();
            this.readField(true);
            this.stopWatch = watch(this.stage, () => this.tick(), 500);
            this.tick();
        }

        destroy() {
            this.stopWatch();
            if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
        }

        // ----- DOM -----
        makeStage(label) {
            this.canvas = el("canvas", {class: "regedit-canvas"});
            this.stage = el("div", {class: "regedit-stage", tabindex: "0", role: "application", "aria-label": label},
                [this.canvas]);
        }

        button(name, label, title, fn) {
            return el("button", {type: "button", class: "regedit-btn", "data-action": name, title, text: label, onclick: fn});
        }

        // A drawing tool's button: pressing it makes ``name`` the panel's tool (``setTool``).
        toolButton(name, label, title) {
            return el("button", {type: "button", class: "regedit-tool", "data-tool": name, title, text: label,
                                 onclick: () => this.setTool(name)});
        }

        historyButtons() {
            return {
                undo: this.button("undo", "\u21b6 Undo", "Undo (Ctrl+Z)", () => this.undo()),
                redo: this.button("redo", "\u21b7 Redo", "Redo (Ctrl+Y or Ctrl+Shift+Z)", () => this.redo()),
            };
        }

        // The panel's root: the given parts, then the status line and the help; mounted in the host,
        // with the canvas's pointer events and the panel's keys bound.
        mountRoot(kind, parts, help) {
            this.status = el("div", {class: "regedit-status", "aria-live": "polite"});
            this.root = el("div", {class: "regedit-panel " + kind, "data-tab": this.tab},
                parts.concat([this.status, el("div", {class: "regedit-hint", text: help})]));
            this.host.appendChild(this.root);
            const canvas = this.canvas;
            canvas.addEventListener("pointerdown", (e) => {
                if (e.button !== 0 || !this.ctx) return;
                this.stage.focus({preventScroll: true});
                this.onPointerDown(e);
            });
            canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
            canvas.addEventListener("pointerup", (e) => {
                if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
                this.onPointerUp(e);
            });
            canvas.addEventListener("pointercancel", () => this.cancelOp());
            canvas.addEventListener("pointerleave", () => this.onPointerLeave());
            this.root.addEventListener("keydown", (e) => this.onKey(e));
        }

        colour(i) {
            return PALETTE[i % PALETTE.length];
        }

        // ----- the status line -----
        // A message shown first on the status line for a few seconds.
        flash(text) {
            this.flashText = text;
            this.flashUntil = Date.now() + FLASH_MS;
            this.updateStatus();
        }

        updateStatus() {
            const parts = [];
            if (this.flashText && Date.now() < this.flashUntil) parts.push(this.flashText);
            if (this.fieldError) {
                parts.push("The " + this.fieldName + " field: " + this.fieldError + "; drawing a " + this.shapeName +
                    " replaces it.");
            }
            this.status.textContent = parts.concat(this.statusParts()).join("  \u2502  ");
            this.status.classList.toggle("regedit-warn", !!this.fieldError);
        }

        // ----- the hidden field -----
        // Writes the document to the field (with an input event, so gradio follows) and ticks "Enable"
        // for the first shape drawn.
        writeDocument() {
            const field = fieldTextarea(this.fieldId);
            const value = this.serialise();
            this.lastValue = value;
            this.fieldError = null;
            if (field) writeField(field, value);
            this.enableOnFirst();
        }

        // The first shape drawn ticks the tab's "Enable" checkbox (once: a later untick is respected).
        enableOnFirst() {
            const count = this.shapeCount();
            if (count > 0 && !this.hadShapes) {
                const box = app().querySelector(`#regedit_enable_${this.tab} input[type=checkbox]`);
                if (box && !box.checked) box.click();
            }
            this.hadShapes = count > 0;
        }

        // The document's text: head, the document's other fields as read, and the shapes; empty when
        // there is nothing to keep.
        documentText(head, items) {
            const extra = Object.keys(this.base).filter((k) => k !== "version" && k !== this.listKey);
            if (!items.length && !extra.length) return "";
            const doc = Object.assign(head, this.base);
            doc[this.listKey] = items;
            return JSON.stringify(doc);
        }

        // Takes the document from the field when it changed there (gradio sets values without events).
        // Text that is not a JSON object is reported and left alone.
        readField(initial) {
            const field = fieldTextarea(this.fieldId);
            if (!field || field.value === this.lastValue) return;
            this.lastValue = field.value;
            const parsed = parseObject(field.value);
            if (!parsed.ok) {
                this.fieldError = parsed.error;
                this.updateStatus();
                return;
            }
            const obj = parsed.value || {};
            const before = this.snapshot();
            this.base = Object.assign({}, obj);
            delete this.base[this.listKey];
            this.fieldError = this.load(obj);
            this.hadShapes = this.shapeCount() > 0;  // loaded, not drawn: leave "Enable" as it is
            if (!initial && before !== this.snapshot()) this.history.push(before);
            this.loaded();
        }

        // ----- layout -----
        aspect() {
            const img = this.images && this.images.image;
            if (img && img.naturalWidth && img.naturalHeight) return img.naturalWidth / img.naturalHeight;
            return this.out.w / this.out.h;
        }

        // Sizes the canvas to the stage; true when its size changed.
        layout() {
            const avail = this.stage.clientWidth;
            if (avail <= 0) return false;
            const s = fitSize(avail, this.aspect(), MAX_CANVAS_H);
            if (this.ctx && s.w === this.size.w && s.h === this.size.h) return false;
            this.size = s;
            this.ctx = sizeCanvas(this.canvas, s.w, s.h);
            return true;
        }

        // A new init image (or none).
        refresh() {
            if (!isShown(this.stage)) return;
            this.layout();
            this.updateStatus();
            this.render();
        }

        // True while a gesture is under way: the field is not read meanwhile.
        busy() {
            return !!this.op;
        }

        // Moves the panel into whichever of its hosts is shown, when it is not shown where it is; true
        // when it is shown now. placed() hears of a move.
        place() {
            if (isShown(this.stage)) return true;
            for (const [task, id] of Object.entries(this.slots)) {
                const host = id === null ? this.host : byId(id);
                if (!host || host === this.root.parentNode || !isShown(host)) continue;
                host.appendChild(this.root);
                this.task = task;
                this.placed();
                return isShown(this.stage);
            }
            return false;
        }

        placed() {
        }

        tick() {
            if (!this.root.isConnected || !this.place()) return; // hidden tab or collapsed accordion
            let dirty = false;
            const out = outputSize(this.tab);
            if (out.w !== this.out.w || out.h !== this.out.h) {
                this.out = out;
                dirty = true;
            }
            if (this.images) {
                const img = initImage();
                this.images.update(img ? img.src : null);
            }
            if (!this.busy()) this.readField(false);
            if (this.layout()) dirty = true;
            if (this.flashText && Date.now() >= this.flashUntil) {
                this.flashText = null;
                this.updateStatus();
            }
            if (dirty) this.render();
        }

        // Clears the canvas and draws the init image, or a grey ground.
        drawBackdrop(ctx, image) {
            const W = this.size.w;
            const H = this.size.h;
            ctx.clearRect(0, 0, W, H);
            if (image) {
                ctx.drawImage(image, 0, 0, W, H);
                return;
            }
            ctx.fillStyle = "#40444b";
            ctx.fillRect(0, 0, W, H);
        }

        // What to do, written on the canvas itself (lines; the first is the gesture).
        drawHint(ctx, lines) {
            drawHint(ctx, lines, this.size.w, this.size.h);
        }

        // The pointer in css pixels from the canvas's top left corner.
        pointerPx(e) {
            const rect = this.canvas.getBoundingClientRect();
            return {x: e.clientX - rect.left, y: e.clientY - rect.top};
        }

        // ----- commands -----
        // Drops a shape being drawn, if any: true when that was the undo (or the Esc).
        dropDraft() {
            return false;
        }

        undo() {
            this.cancelOp();
            if (this.dropDraft()) return;
            const s = this.history.undo(this.snapshot());
            if (s !== null) this.restore(s);
            this.lastNudge = null;
        }

        redo() {
            this.cancelOp();
            const s = this.history.redo(this.snapshot());
            if (s !== null) this.restore(s);
            this.lastNudge = null;
        }

        // Before a nudge of the shape `key`: quick nudges of one shape make one undo step.
        nudgeHistory(key) {
            const now = Date.now();
            const last = this.lastNudge;
            if (!(last && last.key === key && now - last.time < NUDGE_MERGE_MS)) this.history.push(this.snapshot());
            this.lastNudge = {key, time: now};
        }

        // Arrow keys nudge by this many pixels of the output.
        nudgeStep(e) {
            return e.shiftKey ? 8 : 1;
        }

        // A key the panel handles beyond the common ones; true when handled.
        panelKey(e) {
            return false;
        }

        onKey(e) {
            if (isTextTarget(e.target)) return; // text controls keep their own keys
            const sel = this.hasSelection();
            const arrow = ARROWS.get(e.key);
            let handled = true;
            if (isUndoKey(e)) this.undo();
            else if (isRedoKey(e)) this.redo();
            else if (e.key === "Delete" || e.key === "Backspace") handled = sel && (this.deleteSelected(), true);
            else if (e.key === "Escape") handled = this.escape();
            else if (arrow) {
                const step = this.nudgeStep(e);
                handled = sel && (this.nudge(arrow[0] * step, arrow[1] * step), true);
            } else handled = this.panelKey(e);
            if (handled) {
                e.preventDefault();
                e.stopPropagation();
            }
        }
    }

    // Mounts a panel in each tab whose host and field exist, and again after the WebUI rebuilds its DOM.
    function mountPanels(panels, tabs, hostPrefix, fieldPrefix, create) {
        for (const tab of tabs) {
            const host = byId(hostPrefix + tab);
            const existing = panels[tab];
            if (existing && existing.host === host && existing.root.isConnected) {
                existing.tick(); // the page changed: a task's hosts may have been shown
                continue;
            }
            if (existing) existing.destroy();
            delete panels[tab];
            if (host && fieldTextarea(fieldPrefix + tab)) panels[tab] = create(tab, host);
        }
    }

    const RegEditUI = {
        PALETTE, app, byId, fieldTextarea, writeField, outputSize, initImage, ImageTracker, History, clamp, round,
        parseObject, el, isShown, isTextTarget, isUndoKey, isRedoKey, sizeCanvas, fitSize, hexToRgba, drawLabel,
        drawHint, watch, Panel, mountPanels,
    };
    window.RegEditUI = RegEditUI;
})();
