// RegEdit: the drag-region panel (img2img). Pairs of handle and target regions, each a polygon
// (triangle or quad, clicked vertex by vertex) or a brush mask, over the init image, with an instant
// preview of the copy-paste: the pixels of each handle moved onto its target by the dense mapping
// (affine for triangles, perspective for quads, scaling between bounding boxes for brush masks), as
// RegionDrag does with latents. Reads and writes the drag document (lib_regedit/documents/drag.py)
// in the hidden textbox #regedit_drag_img2img.
(function () {
    "use strict";

    const MAX_PAIRS = 16;
    const VERTEX_PX = 8;
    const STROKE_STEP_PX = 2.5;
    // The shape vocabulary shared with the region canvas (javascript/regedit_shapes.js), looked up when
    // used: the WebUI loads the scripts in name order, this one first.
    const S = () => window.RegEditShapes;
    const cleanRegion = (r) => S().cleanShape(r, [3, 4]);
    const serialiseRegion = (r) => S().serialiseShape(r);
    const describe = (r) => S().describe(r);
    const regionBox = (r, W, H) => S().shapeBox(r, W, H);
    const paintMask = (...args) => S().paintMask(...args);
    const insidePolygon = (...args) => S().insidePolygon(...args);
    const HELP = "Draw each pair's handle (what moves), then its target (where it goes). Polygon: click 3 " +
        "vertices and press Enter (or click the first vertex) for a triangle, or click 4 for a quad; the target " +
        "gets as many vertices as its handle, in the same order. Brush: paint, then press Enter. Move: drag a " +
        "region or a vertex; arrow keys nudge it (Shift: 8\u00d7), Delete removes its pair, Esc cancels, " +
        "Ctrl+Z / Ctrl+Y undo and redo.";

    const panels = {};

    // ----- geometry (pure) -----

    // Solve a small dense linear system by Gaussian elimination; null when singular.
    function solve(A, b) {
        const n = b.length;
        const M = A.map((row, i) => row.concat([b[i]]));
        for (let c = 0; c < n; c++) {
            let p = c;
            for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
            if (Math.abs(M[p][c]) < 1e-12) return null;
            [M[c], M[p]] = [M[p], M[c]];
            for (let r = 0; r < n; r++) {
                if (r === c) continue;
                const f = M[r][c] / M[c][c];
                if (f !== 0) for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
            }
        }
        return M.map((row, i) => row[n] / row[i]);
    }

    // The map taking the points `from` onto the points `to` (3 pairs: affine, 4 pairs: perspective).
    function pointMap(from, to) {
        const A = [];
        const b = [];
        if (from.length === 3) {
            for (let i = 0; i < 3; i++) {
                const [x, y] = from[i];
                A.push([x, y, 1, 0, 0, 0]);
                b.push(to[i][0]);
                A.push([0, 0, 0, x, y, 1]);
                b.push(to[i][1]);
            }
            const m = solve(A, b);
            return m && ((x, y) => [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]]);
        }
        for (let i = 0; i < 4; i++) {
            const [x, y] = from[i];
            const [u, v] = to[i];
            A.push([x, y, 1, 0, 0, 0, -x * u, -y * u]);
            b.push(u);
            A.push([0, 0, 0, x, y, 1, -x * v, -y * v]);
            b.push(v);
        }
        const m = solve(A, b);
        return m && ((x, y) => {
            const d = m[6] * x + m[7] * y + 1;
            return [(m[0] * x + m[1] * y + m[2]) / d, (m[3] * x + m[4] * y + m[5]) / d];
        });
    }

    function sampleBilinear(src, W, H, x, y, out, o) {
        x = Math.max(0, Math.min(W - 1, x - 0.5));
        y = Math.max(0, Math.min(H - 1, y - 0.5));
        const x0 = Math.floor(x);
        const y0 = Math.floor(y);
        const x1 = Math.min(W - 1, x0 + 1);
        const y1 = Math.min(H - 1, y0 + 1);
        const fx = x - x0;
        const fy = y - y0;
        const a = (y0 * W + x0) * 4;
        const b = (y0 * W + x1) * 4;
        const c = (y1 * W + x0) * 4;
        const d = (y1 * W + x1) * 4;
        for (let k = 0; k < 4; k++) {
            const top = src[a + k] + (src[b + k] - src[a + k]) * fx;
            const bottom = src[c + k] + (src[d + k] - src[c + k]) * fx;
            out[o + k] = top + (bottom - top) * fy;
        }
    }

    // Copy-paste one pair onto `out` (RGBA, W x H), reading the original pixels from `src`.
    // Every target pixel is pulled from the handle through the inverse of the dense mapping.
    function pastePair(pair, src, out, W, H, scratch) {
        const [tx0, ty0, tx1, ty1] = regionBox(pair.target, W, H).map(Math.round);
        if (pair.handle.type === "polygon") {
            const tp = pair.target.points.map(([x, y]) => [x * W, y * H]);
            const hp = pair.handle.points.map(([x, y]) => [x * W, y * H]);
            const map = pointMap(tp, hp);
            if (!map) return 0;
            let n = 0;
            for (let y = ty0; y < ty1; y++) {
                for (let x = tx0; x < tx1; x++) {
                    if (!insidePolygon(tp, x + 0.5, y + 0.5)) continue;
                    const [sx, sy] = map(x + 0.5, y + 0.5);
                    if (sx < 0 || sy < 0 || sx > W || sy > H) continue;
                    sampleBilinear(src, W, H, sx, sy, out, (y * W + x) * 4);
                    n++;
                }
            }
            return n;
        }
        // Brush masks: scale the handle's bounding box onto the target's, horizontally and vertically.
        scratch.width = W;
        scratch.height = H;
        const sctx = scratch.getContext("2d", {willReadFrequently: true});
        sctx.clearRect(0, 0, W, H);
        paintMask(sctx, pair.handle, W, H, "#fff");
        const alpha = sctx.getImageData(0, 0, W, H).data;
        const [hx0, hy0, hx1, hy1] = regionBox(pair.handle, W, H);
        const tb = regionBox(pair.target, W, H);
        const tw = tb[2] - tb[0];
        const th = tb[3] - tb[1];
        if (tw <= 0 || th <= 0 || hx1 <= hx0 || hy1 <= hy0) return 0;
        const kx = (hx1 - hx0) / tw;
        const ky = (hy1 - hy0) / th;
        let n = 0;
        for (let y = ty0; y < ty1; y++) {
            const sy = hy0 + (y + 0.5 - tb[1]) * ky;
            const iy = Math.floor(sy);
            if (iy < 0 || iy >= H) continue;
            for (let x = tx0; x < tx1; x++) {
                const sx = hx0 + (x + 0.5 - tb[0]) * kx;
                const ix = Math.floor(sx);
                if (ix < 0 || ix >= W || alpha[(iy * W + ix) * 4 + 3] < 128) continue;
                sampleBilinear(src, W, H, sx, sy, out, (y * W + x) * 4);
                n++;
            }
        }
        return n;
    }

    // The class extends RegEditUI.Panel, so it is made on the first mount (see regedit_common.js).
    function defineDragPanel(Panel) {
        return class DragPanel extends Panel {
            constructor(tab, host) {
                super(tab, host, {fieldId: "regedit_drag_" + tab, listKey: "pairs", fieldName: "drag", shapeName: "region",
                    initImage: true});
                this.pairs = [];
                this.pending = null;
                this.stroke = null;
                this.tool = "polygon";
                this.radiusPx = 16;
                this.preview = true;
                this.selected = null;
                this.hoverPoint = null;
                this.previewCanvas = document.createElement("canvas");
                this.scratch = document.createElement("canvas");
                this.baseData = null;
                this.previewKey = null;
                this.start();
            }

            // ----- DOM -----
            build() {
                const el = this.U.el;
                this.makeStage("Drag regions canvas. " + HELP);
                const tool = (name, label, title) => this.toolButton(name, label, title);
                this.toolButtons = {
                    polygon: tool("polygon", "\u25b3 Polygon", "Click 3 or 4 vertices"),
                    brush: tool("brush", "\u270e Brush", "Paint a region, then press Enter"),
                    move: tool("move", "\u2725 Move", "Drag a region or one of its vertices"),
                };
                this.buttons = Object.assign(this.historyButtons(), {
                    finish: this.button("finish", "Finish region", "Finish the region being drawn (Enter)", () => this.finishRegion()),
                    delete: this.button("delete", "Delete pair", "Delete the selected pair (Delete)", () => this.deleteSelected()),
                    clear: this.button("clear", "Clear all", "Remove every pair", () => this.clear()),
                });
                this.radiusInput = el("input", {type: "range", min: "2", max: "96", step: "1", value: String(this.radiusPx),
                    "data-role": "brush-size"});
                this.radiusInput.addEventListener("input", () => {
                    this.radiusPx = parseInt(this.radiusInput.value, 10) || 16;
                    this.radiusLabel.textContent = " " + this.radiusPx + " px";
                });
                this.radiusLabel = el("span", {text: " " + this.radiusPx + " px"});
                const radius = el("label", {class: "regedit-check", title: "Brush radius in pixels of the image"},
                    [document.createTextNode("Brush "), this.radiusInput, this.radiusLabel]);
                this.previewBox = el("input", {type: "checkbox", "data-role": "preview"});
                this.previewBox.checked = this.preview;
                this.previewBox.addEventListener("change", () => {
                    this.preview = this.previewBox.checked;
                    this.render();
                });
                const preview = el("label", {class: "regedit-check", title: "Show the image with each handle copied onto its target"},
                    [this.previewBox, document.createTextNode(" Preview copy-paste")]);
                const toolbar = el("div", {class: "regedit-toolbar"}, [
                    this.toolButtons.polygon, this.toolButtons.brush, this.toolButtons.move, radius, this.buttons.finish]);
                const toolbar2 = el("div", {class: "regedit-toolbar"}, [
                    this.buttons.undo, this.buttons.redo, this.buttons.delete, this.buttons.clear, preview]);
                this.next = el("div", {class: "regedit-next"});
                this.list = el("div", {class: "regedit-pairs"});
                const side = el("div", {class: "regedit-side"}, [this.next, this.list]);
                const body = el("div", {class: "regedit-body"}, [this.stage, side]);
                const title = el("div", {class: "regedit-title", text: "Drag regions: each pair moves its handle onto its target"});
                this.mountRoot("regedit-drag-panel", [title, toolbar, toolbar2, body], HELP);
                this.updateSide();
            }

            // Where the next finished region goes: {pair, side}.
            nextSlot() {
                const last = this.pairs[this.pairs.length - 1];
                if (last && !last.target) return {pair: this.pairs.length - 1, side: "target"};
                return {pair: this.pairs.length, side: "handle"};
            }

            // The drawing tool actually used: a target is drawn the way its handle was.
            drawTool() {
                if (this.tool === "move") return "move";
                const slot = this.nextSlot();
                if (slot.side === "target") return this.pairs[slot.pair].handle.type === "mask" ? "brush" : "polygon";
                return this.tool;
            }

            setTool(name) {
                if (this.pending && name !== this.tool) this.pending = null;
                this.tool = name;
                this.op = null;
                const slot = this.nextSlot();
                if (name !== "move" && slot.side === "target" && this.drawTool() !== name) {
                    this.flash("Pair " + (slot.pair + 1) + "'s handle is a " + describe(this.pairs[slot.pair].handle) +
                        ": its target is drawn the same way.");
                }
                this.canvas.style.cursor = name === "move" ? "default" : "crosshair";
                this.updateSide();
                this.render();
            }

            updateSide() {
                const U = this.U;
                const el = U.el;
                const active = this.drawTool();
                for (const [name, b] of Object.entries(this.toolButtons)) b.classList.toggle("active", name === active);
                const slot = this.nextSlot();
                let text;
                if (this.tool === "move") {
                    text = this.selected ? "Drag the selected region or its vertices; arrow keys nudge it." :
                        "Click a region to select it, then drag it or its vertices.";
                } else if (slot.side === "handle") {
                    text = slot.pair >= MAX_PAIRS ? "At most " + MAX_PAIRS + " pairs." :
                        "Next: the handle of pair " + (slot.pair + 1) + " (what moves), " +
                        (active === "brush" ? "painted; Enter finishes it." : "3 or 4 vertices.");
                } else {
                    const h = this.pairs[slot.pair].handle;
                    text = "Next: the target of pair " + (slot.pair + 1) + " (where it goes), " +
                        (h.type === "mask" ? "painted; Enter finishes it." :
                            h.points.length + " vertices in the same order as the handle's.");
                }
                this.next.textContent = text;
                this.next.style.borderLeft = "6px solid " + this.colour(slot.pair);
                this.next.style.paddingLeft = "6px";
                this.list.textContent = "";
                this.pairs.forEach((pair, i) => {
                    const kind = pair.target ? (pair.handle.type === "mask" ? "scale" :
                        pair.handle.points.length === 3 ? "affine" : "perspective") : "incomplete";
                    const row = el("div", {
                        class: "regedit-pair" + (this.selected && this.selected.pair === i ? " selected" : ""),
                        "data-index": String(i),
                        onclick: () => this.select({pair: i, side: "handle"}),
                    }, [
                        el("span", {text: "Pair " + (i + 1) + ": " + describe(pair.handle) + " \u2192 " +
                                describe(pair.target) + " (" + kind + ")"}),
                        el("button", {type: "button", class: "regedit-btn", title: "Delete this pair", text: "\u2715",
                            onclick: (e) => {
                                e.stopPropagation();
                                this.deletePair(i);
                            }}),
                    ]);
                    row.style.setProperty("--regedit-colour", this.colour(i));
                    this.list.appendChild(row);
                });
                this.buttons.undo.disabled = !this.history.canUndo && !this.pending;
                this.buttons.redo.disabled = !this.history.canRedo;
                this.buttons.delete.disabled = !this.selected;
                this.buttons.clear.disabled = !this.pairs.length;
                this.buttons.finish.disabled = !this.canFinish();
                this.updateStatus();
            }

            statusParts() {
                const done = this.pairs.filter((p) => p.target).length;
                const parts = [done + (done === 1 ? " pair" : " pairs")];
                if (!this.images.image) parts.push("no init image yet: load one above to see the preview");
                return parts;
            }

            // ----- the hidden field -----
            snapshot() {
                return JSON.stringify(this.pairs);
            }

            restore(s) {
                this.pairs = JSON.parse(s);
                this.pending = null;
                if (this.selected && !this.regionAt(this.selected)) this.selected = null;
                this.commit();
            }

            serialise() {
                const complete = this.pairs.filter((p) => p.handle && p.target);
                return this.documentText({version: 2},  // lib_regedit/documents/drag.py VERSION
                    complete.map((p) => ({handle: serialiseRegion(p.handle), target: serialiseRegion(p.target)})));
            }

            // Complete pairs: the first one ticks "Enable", as the first box does.
            shapeCount() {
                return this.pairs.filter((p) => p.handle && p.target).length;
            }

            commit() {
                this.writeDocument();
                this.previewKey = null;
                this.updateSide();
                this.render();
            }

            load(obj) {
                const raw = Array.isArray(obj.pairs) ? obj.pairs : [];
                const pairs = [];
                let dropped = 0;
                for (const p of raw) {
                    const handle = p && cleanRegion(p.handle);
                    const target = p && cleanRegion(p.target);
                    if (handle && target && handle.type === target.type &&
                        (handle.type === "mask" || handle.points.length === target.points.length)) {
                        pairs.push({handle, target});
                    } else {
                        dropped++;
                    }
                }
                this.pairs = pairs;
                this.pending = null;
                return dropped ? dropped + " pair(s) could not be drawn and are left out" : null;
            }

            loaded() {
                if (this.selected && !this.regionAt(this.selected)) this.selected = null;
                this.previewKey = null;
                this.updateSide();
                this.render();
            }

            // ----- layout -----
            layout() {
                if (!super.layout()) return false;
                this.previewKey = null;
                this.baseData = null;
                return true;
            }

            // A new init image (or none): the preview is made again.
            refresh() {
                this.previewKey = null;
                this.baseData = null;
                super.refresh();
            }

            busy() {
                return !!(this.op || this.stroke);
            }

            // ----- preview -----
            // The init image with every complete pair copy-pasted, at the canvas's pixel size.
            previewImage() {
                const img = this.images.image;
                if (!img || !this.preview) return null;
                const W = this.canvas.width;
                const H = this.canvas.height;
                const key = this.snapshot() + "|" + W + "x" + H;
                if (this.previewKey === key) return this.previewCanvas;
                if (!this.baseData || this.baseData.width !== W || this.baseData.height !== H) {
                    this.scratch.width = W;
                    this.scratch.height = H;
                    const sctx = this.scratch.getContext("2d", {willReadFrequently: true});
                    sctx.drawImage(img, 0, 0, W, H);
                    try {
                        this.baseData = sctx.getImageData(0, 0, W, H);
                    } catch (e) { // an image from another origin cannot be read back
                        this.preview = this.previewBox.checked = false;
                        this.flash("The init image cannot be read here (another origin), so there is no preview.");
                        return null;
                    }
                }
                const out = new ImageData(new Uint8ClampedArray(this.baseData.data), W, H);
                for (const pair of this.pairs) {
                    if (pair.handle && pair.target) pastePair(pair, this.baseData.data, out.data, W, H, this.scratch);
                }
                this.previewCanvas.width = W;
                this.previewCanvas.height = H;
                this.previewCanvas.getContext("2d").putImageData(out, 0, 0);
                this.previewKey = key;
                return this.previewCanvas;
            }

            // ----- pointer -----
            // The pointer in fractions of the canvas (= of the image).
            pointer(e) {
                const q = this.pointerPx(e);
                const U = this.U;
                return [U.clamp(q.x / this.size.w, 0, 1), U.clamp(q.y / this.size.h, 0, 1)];
            }

            px(p) {
                return [p[0] * this.size.w, p[1] * this.size.h];
            }

            distPx(a, b) {
                return Math.hypot((a[0] - b[0]) * this.size.w, (a[1] - b[1]) * this.size.h);
            }

            regionAt(sel) {
                const pair = sel && this.pairs[sel.pair];
                return pair ? pair[sel.side] : null;
            }

            // Which region (and vertex) is under p: selected region first, then targets and handles, top first.
            hitTest(p) {
                const order = [];
                if (this.selected) order.push(this.selected);
                for (let i = this.pairs.length - 1; i >= 0; i--) {
                    for (const side of ["target", "handle"]) {
                        if (!this.selected || this.selected.pair !== i || this.selected.side !== side) order.push({pair: i, side});
                    }
                }
                const regions = order.map((s) => [s, this.regionAt(s)]).filter(([, r]) => r);
                for (const [sel, r] of regions) {
                    if (r.type !== "polygon") continue;
                    const v = r.points.findIndex((q) => this.distPx(p, q) <= VERTEX_PX);
                    if (v >= 0) return Object.assign({vertex: v}, sel);
                }
                const pp = this.px(p);
                for (const [sel, r] of regions) {
                    if (S().hitShape(r, pp, this.size.w, this.size.h, 3)) return sel;
                }
                return null;
            }

            onPointerDown(e) {
                e.preventDefault();
                const p = this.pointer(e);
                const tool = this.drawTool();
                if (tool === "move") {
                    const hit = this.hitTest(p);
                    this.select(hit ? {pair: hit.pair, side: hit.side} : null);
                    if (hit) {
                        this.op = {vertex: hit.vertex, sel: {pair: hit.pair, side: hit.side}, start: p,
                            orig: JSON.stringify(this.regionAt(hit)), before: this.snapshot(), changed: false};
                        this.canvas.setPointerCapture(e.pointerId);
                    }
                    return;
                }
                // The second click of a double click that finished a polygon starts nothing new.
                const f = this.lastFinish;
                if (!this.pending && f && Date.now() - f.time < 500 && this.distPx(p, f.point) <= 3) return;
                const slot = this.nextSlot();
                if (slot.side === "handle" && slot.pair >= MAX_PAIRS) {
                    this.flash("At most " + MAX_PAIRS + " pairs; delete one to draw another.");
                    return;
                }
                if (tool === "polygon") {
                    this.addVertex(p, slot);
                    return;
                }
                if (!this.pending) this.pending = {type: "mask", strokes: []};
                if (this.pending.strokes.length >= S().MAX_STROKES) {
                    this.flash("At most " + S().MAX_STROKES + " strokes in one region; press Enter to finish it.");
                    return;
                }
                this.stroke = {points: [p], radius: this.radiusPx / this.out.w};
                this.pending.strokes.push(this.stroke);
                this.canvas.setPointerCapture(e.pointerId);
                this.updateSide();
                this.render();
            }

            addVertex(p, slot) {
                if (!this.pending) this.pending = {type: "polygon", points: []};
                const pts = this.pending.points;
                const last = pts[pts.length - 1];
                // A click on the first vertex, or a double click, closes a triangle.
                if (pts.length >= 3 && (this.distPx(p, pts[0]) <= VERTEX_PX || this.distPx(p, last) <= 3)) {
                    this.lastFinish = {point: p, time: Date.now()};
                    this.finishRegion();
                    return;
                }
                if (last && this.distPx(p, last) <= 3) return;
                pts.push(p);
                const need = slot.side === "target" ? this.pairs[slot.pair].handle.points.length : 4;
                if (pts.length >= need) {
                    this.lastFinish = {point: p, time: Date.now()};
                    this.finishRegion();
                }
                else {
                    this.updateSide();
                    this.render();
                }
            }

            onPointerMove(e) {
                const p = this.pointer(e);
                if (this.stroke) {
                    const pts = this.stroke.points;
                    if (pts.length < S().MAX_STROKE_POINTS && this.distPx(p, pts[pts.length - 1]) >= STROKE_STEP_PX) {
                        pts.push(p);
                        this.render();
                    }
                    return;
                }
                const op = this.op;
                if (!op) {
                    this.hoverPoint = p;
                    if (this.pending && this.pending.type === "polygon") this.render();
                    if (this.drawTool() === "move") {
                        const hit = this.hitTest(p);
                        this.canvas.style.cursor = hit ? (hit.vertex !== undefined ? "pointer" : "move") : "default";
                    }
                    return;
                }
                const region = this.regionAt(op.sel);
                const orig = JSON.parse(op.orig);
                const U = this.U;
                if (op.vertex !== undefined) {
                    region.points[op.vertex] = p;
                } else {
                    const pts = S().shapePoints(orig);
                    const xs = pts.map((q) => q[0]);
                    const ys = pts.map((q) => q[1]);
                    const dx = U.clamp(p[0] - op.start[0], -Math.min(...xs), 1 - Math.max(...xs));
                    const dy = U.clamp(p[1] - op.start[1], -Math.min(...ys), 1 - Math.max(...ys));
                    this.translate(region, orig, dx, dy);
                }
                op.changed = true;
                this.render();
            }

            translate(region, orig, dx, dy) {
                const shift = (q) => [q[0] + dx, q[1] + dy];
                if (region.type === "polygon") region.points = orig.points.map(shift);
                else region.strokes = orig.strokes.map((s) => ({points: s.points.map(shift), radius: s.radius}));
            }

            onPointerUp(e) {
                if (this.stroke) {
                    this.stroke = null;
                    this.updateSide();
                    this.render();
                    return;
                }
                const op = this.op;
                if (!op) return;
                this.op = null;
                if (op.changed) {
                    this.history.push(op.before);
                    this.commit();
                }
            }

            cancelOp() {
                if (this.stroke) {
                    this.pending.strokes.pop();
                    if (!this.pending.strokes.length) this.pending = null;
                    this.stroke = null;
                    this.render();
                    return true;
                }
                const op = this.op;
                if (!op) return false;
                this.op = null;
                Object.assign(this.regionAt(op.sel), JSON.parse(op.orig));
                this.render();
                return true;
            }

            onPointerLeave() {
                this.hoverPoint = null;
                if (this.pending && this.pending.type === "polygon") this.render();
            }

            // ----- commands -----
            canFinish() {
                const r = this.pending;
                if (!r) return false;
                if (r.type === "mask") return r.strokes.length > 0 && !this.stroke;
                const slot = this.nextSlot();
                const need = slot.side === "target" ? this.pairs[slot.pair].handle.points.length : 3;
                return r.points.length === need || (slot.side === "handle" && r.points.length === 4);
            }

            finishRegion() {
                if (!this.canFinish()) {
                    if (this.pending && this.pending.type === "polygon") {
                        const slot = this.nextSlot();
                        const need = slot.side === "target" ? this.pairs[slot.pair].handle.points.length : 3;
                        this.flash("A polygon needs " + (slot.side === "target" ? need : "3 or 4") + " vertices.");
                    }
                    return;
                }
                const slot = this.nextSlot();
                this.history.push(this.snapshot());
                const region = this.pending;
                this.pending = null;
                if (slot.side === "handle") this.pairs.push({handle: region, target: null});
                else this.pairs[slot.pair].target = region;
                this.selected = null;
                this.commit();
            }

            select(sel) {
                const same = (a, b) => (!a && !b) || (a && b && a.pair === b.pair && a.side === b.side);
                if (same(sel, this.selected)) return;
                this.selected = sel;
                this.lastNudge = null;
                this.updateSide();
                this.render();
            }

            deletePair(i) {
                if (!this.pairs[i]) return;
                this.history.push(this.snapshot());
                this.pairs.splice(i, 1);
                this.selected = null;
                this.commit();
            }

            deleteSelected() {
                if (this.selected) this.deletePair(this.selected.pair);
            }

            clear() {
                if (!this.pairs.length && !this.pending) return;
                this.history.push(this.snapshot());
                this.pairs = [];
                this.pending = null;
                this.selected = null;
                this.commit();
            }

            // Undo and Esc drop the region being drawn first.
            dropDraft() {
                if (!this.pending) return false;
                this.pending = null;
                this.updateSide();
                this.render();
                return true;
            }

            nudge(dxPx, dyPx) {
                const region = this.regionAt(this.selected);
                if (!region) return;
                this.nudgeHistory(this.selected.pair + ":" + this.selected.side);
                const pts = S().shapePoints(region);
                const U = this.U;
                const dx = U.clamp(dxPx / this.out.w, -Math.min(...pts.map((q) => q[0])), 1 - Math.max(...pts.map((q) => q[0])));
                const dy = U.clamp(dyPx / this.out.h, -Math.min(...pts.map((q) => q[1])), 1 - Math.max(...pts.map((q) => q[1])));
                this.translate(region, JSON.parse(JSON.stringify(region)), dx, dy);
                this.commit();
            }

            hasSelection() {
                return !!this.regionAt(this.selected);
            }

            // Enter finishes the region being drawn.
            panelKey(e) {
                return e.key === "Enter" && this.canFinish() && (this.finishRegion(), true);
            }

            // Esc: stop the gesture, else drop the region being drawn, else the half-drawn pair, else deselect.
            escape() {
                if (this.cancelOp() || this.dropDraft()) return true;
                const last = this.pairs[this.pairs.length - 1];
                if (last && !last.target && this.tool !== "move") {
                    this.deletePair(this.pairs.length - 1);
                    return true;
                }
                if (this.selected) {
                    this.select(null);
                    return true;
                }
                return false;
            }

            // ----- drawing -----
            render() {
                const ctx = this.ctx;
                if (!ctx) return;
                const U = this.U;
                const img = this.images.image;
                const shown = this.previewImage() || img;
                this.drawBackdrop(ctx, shown);
                const previewOn = shown && shown !== img;
                this.pairs.forEach((pair, i) => {
                    const colour = this.colour(i);
                    this.drawRegion(ctx, pair.handle, colour, "H" + (i + 1), false, previewOn);
                    if (pair.target) {
                        this.drawRegion(ctx, pair.target, colour, "T" + (i + 1), true, previewOn);
                        this.drawArrow(ctx, S().centroid(pair.handle), S().centroid(pair.target), colour);
                    }
                });
                const sel = this.regionAt(this.selected);
                if (sel) this.drawSelection(ctx, sel);
                if (this.pending) this.drawPending(ctx, U);
                if (!img) this.drawHint(ctx, ["Load an init image above", "then draw what moves and where it goes"]);
                else if (!this.pairs.length && !this.pending) {
                    this.drawHint(ctx, this.drawTool() === "brush"
                        ? ["Paint what moves, then press Enter", "then paint where it goes"]
                        : ["Click 3 or 4 corners of what moves", "then as many of where it goes"]);
                }
            }

            drawRegion(ctx, r, colour, label, isTarget, previewOn) {
                const U = this.U;
                const W = this.size.w;
                const H = this.size.h;
                const fillAlpha = isTarget ? (previewOn ? 0 : 0.15) : 0.3;
                if (r.type === "polygon") {
                    ctx.beginPath();
                    r.points.forEach(([x, y], k) => (k ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H)));
                    ctx.closePath();
                    if (fillAlpha) {
                        ctx.fillStyle = U.hexToRgba(colour, fillAlpha);
                        ctx.fill();
                    }
                    ctx.setLineDash(isTarget ? [6, 4] : []);
                    ctx.lineWidth = 3;
                    ctx.strokeStyle = "rgba(0,0,0,0.5)";
                    ctx.stroke();
                    ctx.lineWidth = 2;
                    ctx.strokeStyle = colour;
                    ctx.stroke();
                    ctx.setLineDash([]);
                } else {
                    // Strokes painted opaquely on a scratch canvas, then laid over once, so overlaps do not darken.
                    const dpr = this.canvas.width / W;
                    this.scratch.width = this.canvas.width;
                    this.scratch.height = this.canvas.height;
                    const sctx = this.scratch.getContext("2d", {willReadFrequently: true});
                    sctx.setTransform(dpr, 0, 0, dpr, 0, 0);
                    paintMask(sctx, r, W, H, colour);
                    ctx.save();
                    ctx.globalAlpha = Math.max(fillAlpha, isTarget ? 0.12 : 0.3) + 0.1;
                    ctx.drawImage(this.scratch, 0, 0, W, H);
                    ctx.restore();
                    if (isTarget) {
                        const [x0, y0, x1, y1] = regionBox(r, W, H);
                        ctx.setLineDash([6, 4]);
                        ctx.lineWidth = 1.5;
                        ctx.strokeStyle = colour;
                        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
                        ctx.setLineDash([]);
                    }
                }
                const [bx, by] = regionBox(r, W, H);
                U.drawLabel(ctx, label, Math.min(bx, W - 28), Math.max(0, Math.min(by - 17, H - 16)), colour);
            }

            drawArrow(ctx, a, b, colour) {
                const W = this.size.w;
                const H = this.size.h;
                const [x0, y0] = [a[0] * W, a[1] * H];
                const [x1, y1] = [b[0] * W, b[1] * H];
                const len = Math.hypot(x1 - x0, y1 - y0);
                if (len < 12) return;
                const ux = (x1 - x0) / len;
                const uy = (y1 - y0) / len;
                ctx.lineWidth = 2;
                ctx.strokeStyle = colour;
                ctx.fillStyle = colour;
                ctx.beginPath();
                ctx.moveTo(x0, y0);
                ctx.lineTo(x1 - ux * 8, y1 - uy * 8);
                ctx.stroke();
                ctx.beginPath();
                ctx.moveTo(x1, y1);
                ctx.lineTo(x1 - ux * 10 - uy * 5, y1 - uy * 10 + ux * 5);
                ctx.lineTo(x1 - ux * 10 + uy * 5, y1 - uy * 10 - ux * 5);
                ctx.closePath();
                ctx.fill();
            }

            drawSelection(ctx, r) {
                const W = this.size.w;
                const H = this.size.h;
                if (r.type === "polygon") {
                    ctx.fillStyle = "#fff";
                    ctx.strokeStyle = "#000";
                    ctx.lineWidth = 1;
                    r.points.forEach(([x, y], k) => {
                        ctx.beginPath();
                        ctx.arc(x * W, y * H, 5, 0, 2 * Math.PI);
                        ctx.fill();
                        ctx.stroke();
                        ctx.fillStyle = "#000";
                        ctx.font = "10px sans-serif";
                        ctx.fillText(String(k + 1), x * W + 7, y * H - 6);
                        ctx.fillStyle = "#fff";
                    });
                }
                const [x0, y0, x1, y1] = regionBox(r, W, H);
                ctx.setLineDash([3, 3]);
                ctx.strokeStyle = "#fff";
                ctx.lineWidth = 1;
                ctx.strokeRect(x0 - 3, y0 - 3, x1 - x0 + 6, y1 - y0 + 6);
                ctx.setLineDash([]);
            }

            drawPending(ctx, U) {
                const W = this.size.w;
                const H = this.size.h;
                const colour = this.colour(this.nextSlot().pair);
                const r = this.pending;
                if (r.type === "mask") {
                    if (r.strokes.length) this.drawRegion(ctx, r, colour, this.nextSlot().side === "handle" ? "H" : "T", false, false);
                    return;
                }
                const pts = r.points.map(([x, y]) => [x * W, y * H]);
                ctx.strokeStyle = colour;
                ctx.lineWidth = 2;
                ctx.beginPath();
                pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
                if (this.hoverPoint && pts.length) {
                    ctx.setLineDash([4, 4]);
                    ctx.lineTo(this.hoverPoint[0] * W, this.hoverPoint[1] * H);
                }
                ctx.stroke();
                ctx.setLineDash([]);
                pts.forEach(([x, y], k) => {
                    ctx.beginPath();
                    ctx.arc(x, y, k === 0 ? 6 : 4, 0, 2 * Math.PI);
                    ctx.fillStyle = k === 0 ? "#fff" : colour;
                    ctx.fill();
                    ctx.strokeStyle = "#000";
                    ctx.lineWidth = 1;
                    ctx.stroke();
                });
                ctx.fillStyle = U.hexToRgba(colour, 0.15);
            }
        };
    }

    let DragPanel = null;

    function mount() {
        const U = window.RegEditUI;
        if (!U) return;
        U.mountPanels(panels, ["img2img"], "regedit_drag_canvas_", "regedit_drag_", (tab, host) => {
            DragPanel = DragPanel || defineDragPanel(U.Panel);
            return new DragPanel(tab, host);
        });
    }

    window.RegEditDragPanels = panels;
    window.RegEditDragMath = {solve, pointMap, insidePolygon, regionBox, pastePair};
    if (typeof onUiLoaded === "function") onUiLoaded(mount);
    if (typeof onAfterUiUpdate === "function") onAfterUiUpdate(mount);
})();
