// RegEdit for ComfyUI: a box-drawing canvas on the nodes that take a region document (Regions, Layout Init,
// Edit Pair) or a drag document (Drag). Drag on the canvas to draw a box; on a region node, click a box to
// select it and type its prompt below; on the Drag node, the first box of a pair is its handle and the
// next its target. The node's document text holds the document, and the canvas reads and writes only its
// "regions" (or "pairs") list, so every other field stays as written. Boxes are fractions of the image,
// top-left origin, as everywhere in RegEdit; a drag box is written as a four-point polygon.
import { app } from "../../scripts/app.js";

// node -> the text widget holding its document and the list the canvas edits
const NODES = {RegEditRegions: ["regions", "regions"], RegEditLayoutInit: ["regions", "regions"],
    RegEditEditPair: ["regions", "regions"], RegEditDrag: ["drag", "pairs"]};
// The palette of the WebUI's canvas (javascript/regedit_common.js): Okabe-Ito plus two.
const PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
    "#9467bd", "#8c564b", "#17becf"];
const MIN_SIDE = 0.02; // a drag shorter than this (of the image's side) is a click, not a box

function round3(v) {
    return Math.round(v * 1000) / 1000;
}

function clamp01(v) {
    return Math.min(1, Math.max(0, v));
}

// The document in the node's text, or a new one; null when the text is not a JSON object.
function readDocument(text) {
    if (!text || !text.trim()) return {regions: []};
    try {
        const doc = JSON.parse(text);
        return doc && typeof doc === "object" && !Array.isArray(doc) ? doc : null;
    } catch (e) {
        return null;
    }
}

function boxOf(region) {
    const n = (v, d) => (typeof v === "number" && isFinite(v) ? v : d);
    return {x: n(region.x, 0), y: n(region.y, 0), w: n(region.w, 1), h: n(region.h, 1)};
}

// The bounding box of a drag region (a polygon's points, or a mask's strokes), or null.
function shapeBox(shape) {
    const points = shape && Array.isArray(shape.points) ? shape.points
        : (shape && Array.isArray(shape.strokes) ? shape.strokes.flatMap((s) => s.points || []) : []);
    const xs = points.map((p) => p[0]).filter(isFinite), ys = points.map((p) => p[1]).filter(isFinite);
    if (!xs.length || !ys.length) return null;
    const x = Math.min(...xs), y = Math.min(...ys);
    return {x, y, w: Math.max(...xs) - x, h: Math.max(...ys) - y};
}

function polygonOf(b) {
    return {type: "polygon", points: [[b.x, b.y], [b.x + b.w, b.y], [b.x + b.w, b.y + b.h], [b.x, b.y + b.h]]
        .map(([x, y]) => [round3(x), round3(y)])};
}

class RegionCanvas {
    constructor(node, textWidget, list) {
        this.node = node;
        this.text = textWidget;
        this.list = list;  // "regions", or "pairs" on the Drag node
        this.drag_mode = list === "pairs";
        this.selected = -1;
        this.drag = null;
        this.root = document.createElement("div");
        this.root.className = "regedit-comfy";
        this.root.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;";
        this.canvas = document.createElement("canvas");
        this.canvas.className = "regedit-comfy-canvas";
        this.canvas.style.cssText = "width:100%;aspect-ratio:1;background:#222;cursor:crosshair;border-radius:4px;";
        this.prompt = document.createElement("input");
        this.prompt.className = "regedit-comfy-prompt";
        this.prompt.placeholder = "draw a box, then type its prompt";
        this.prompt.style.cssText = "width:100%;box-sizing:border-box;";
        const buttons = document.createElement("div");
        buttons.style.cssText = "display:flex;gap:4px;";
        this.remove = this.button("Delete box", () => this.deleteSelected());
        this.clear = this.button("Clear", () => this.write([]));
        buttons.append(this.remove, this.clear);
        this.status = document.createElement("div");
        this.status.style.cssText = "font-size:11px;opacity:0.8;";
        this.root.append(this.canvas, this.prompt, buttons, this.status);
        if (this.drag_mode) {
            this.prompt.style.display = "none";
            this.remove.textContent = "Delete last pair";
        }
        this.canvas.addEventListener("pointerdown", (e) => this.down(e));
        this.canvas.addEventListener("pointermove", (e) => this.move(e));
        this.canvas.addEventListener("pointerup", (e) => this.up(e));
        this.prompt.addEventListener("input", () => this.setPrompt(this.prompt.value));
        const original = textWidget.callback;
        textWidget.callback = (...args) => {
            const out = original ? original.apply(textWidget, args) : undefined;
            this.draw();
            return out;
        };
    }

    button(label, onClick) {
        const b = document.createElement("button");
        b.textContent = label;
        b.addEventListener("click", (e) => {
            e.preventDefault();
            onClick();
        });
        return b;
    }

    // The image's aspect from the node's width and height, where it has them.
    aspect() {
        const get = (name) => this.node.widgets?.find((w) => w.name === name)?.value;
        const w = get("width"), h = get("height");
        return w > 0 && h > 0 ? w / h : 1;
    }

    regions() {
        const doc = readDocument(this.text.value);
        return doc && Array.isArray(doc[this.list]) ? doc[this.list] : [];
    }

    write(regions) {
        const doc = readDocument(this.text.value) || {};
        doc[this.list] = regions;
        this.text.value = JSON.stringify(doc);
        this.text.callback?.(this.text.value);
        this.node.setDirtyCanvas?.(true, true);
        this.draw();
    }

    point(e) {
        const r = this.canvas.getBoundingClientRect();
        return {x: clamp01((e.clientX - r.left) / r.width), y: clamp01((e.clientY - r.top) / r.height)};
    }

    hit(p) {
        const regions = this.regions();
        for (let i = regions.length - 1; i >= 0; i--) {
            const b = boxOf(regions[i]);
            if (p.x >= b.x && p.x <= b.x + b.w && p.y >= b.y && p.y <= b.y + b.h) return i;
        }
        return -1;
    }

    down(e) {
        e.preventDefault();
        e.stopPropagation();
        this.canvas.setPointerCapture?.(e.pointerId);
        this.drag = {start: this.point(e), end: this.point(e)};
    }

    move(e) {
        if (!this.drag) return;
        e.stopPropagation();
        this.drag.end = this.point(e);
        this.draw();
    }

    up(e) {
        if (!this.drag) return;
        e.stopPropagation();
        const {start, end} = this.drag;
        this.drag = null;
        const x = Math.min(start.x, end.x), y = Math.min(start.y, end.y);
        const w = Math.abs(end.x - start.x), h = Math.abs(end.y - start.y);
        if (w < MIN_SIDE || h < MIN_SIDE) {  // a click selects
            this.select(this.hit(end));
            return;
        }
        const regions = this.regions();
        if (this.drag_mode) {  // a handle, then its target
            const last = regions[regions.length - 1];
            if (last && last.handle && !last.target) last.target = polygonOf({x, y, w, h});
            else regions.push({handle: polygonOf({x, y, w, h})});
            this.write(regions);
            return;
        }
        regions.push({x: round3(x), y: round3(y), w: round3(w), h: round3(h), prompt: ""});
        this.selected = regions.length - 1;
        this.write(regions);
        this.select(this.selected);
        this.prompt.focus();
    }

    select(i) {
        this.selected = i;
        const region = this.regions()[i];
        this.prompt.value = region ? region.prompt || "" : "";
        this.prompt.disabled = !region;
        this.draw();
    }

    setPrompt(text) {
        const regions = this.regions();
        if (!regions[this.selected]) return;
        regions[this.selected].prompt = text;
        this.write(regions);
    }

    deleteSelected() {
        const regions = this.regions();
        if (this.drag_mode) {
            regions.pop();
            this.write(regions);
            return;
        }
        if (!regions[this.selected]) return;
        regions.splice(this.selected, 1);
        this.write(regions);
        this.select(-1);
    }

    draw() {
        const aspect = this.aspect();
        this.canvas.style.aspectRatio = String(aspect);
        const width = 512, height = Math.round(512 / aspect);
        if (this.canvas.width !== width || this.canvas.height !== height) {
            this.canvas.width = width;
            this.canvas.height = height;
        }
        const ctx = this.canvas.getContext("2d");
        ctx.clearRect(0, 0, width, height);
        const doc = readDocument(this.text.value);
        this.status.textContent = doc === null ? "The document is not a JSON object: fix it to draw boxes."
            : this.drag_mode ? `${this.regions().length} pair(s). Draw the handle's box, then its target's.`
                : `${this.regions().length} region(s). Drag to draw a box; click one to select it.`;
        if (this.drag_mode) this.drawPairs(ctx, width, height);
        else this.regions().forEach((region, i) => {
            const b = boxOf(region);
            const colour = PALETTE[i % PALETTE.length];
            ctx.fillStyle = colour + "33";
            ctx.strokeStyle = colour;
            ctx.lineWidth = i === this.selected ? 4 : 2;
            ctx.fillRect(b.x * width, b.y * height, b.w * width, b.h * height);
            ctx.strokeRect(b.x * width, b.y * height, b.w * width, b.h * height);
            ctx.fillStyle = "#fff";
            ctx.font = "16px sans-serif";
            const label = `${i + 1}. ${region.prompt || ""}${region.edit ? " [" + region.edit + "]" : ""}`;
            ctx.fillText(label.slice(0, 40), b.x * width + 4, b.y * height + 18);
        });
        if (this.drag) {
            const {start, end} = this.drag;
            ctx.strokeStyle = "#fff";
            ctx.setLineDash([6, 4]);
            ctx.lineWidth = 2;
            ctx.strokeRect(Math.min(start.x, end.x) * width, Math.min(start.y, end.y) * height,
                Math.abs(end.x - start.x) * width, Math.abs(end.y - start.y) * height);
            ctx.setLineDash([]);
        }
    }
}

RegionCanvas.prototype.drawPairs = function (ctx, width, height) {
    this.regions().forEach((pair, i) => {
        const colour = PALETTE[i % PALETTE.length];
        const handle = shapeBox(pair.handle), target = shapeBox(pair.target);
        ctx.strokeStyle = colour;
        ctx.lineWidth = 2;
        if (handle) {
            ctx.fillStyle = colour + "44";
            ctx.fillRect(handle.x * width, handle.y * height, handle.w * width, handle.h * height);
            ctx.strokeRect(handle.x * width, handle.y * height, handle.w * width, handle.h * height);
        }
        if (target) {
            ctx.setLineDash([6, 4]);
            ctx.strokeRect(target.x * width, target.y * height, target.w * width, target.h * height);
            ctx.setLineDash([]);
        }
        if (handle && target) {  // an arrow from the handle's centre to the target's
            const ax = (handle.x + handle.w / 2) * width, ay = (handle.y + handle.h / 2) * height;
            const bx = (target.x + target.w / 2) * width, by = (target.y + target.h / 2) * height;
            const angle = Math.atan2(by - ay, bx - ax);
            ctx.beginPath();
            ctx.moveTo(ax, ay);
            ctx.lineTo(bx, by);
            ctx.lineTo(bx - 12 * Math.cos(angle - 0.4), by - 12 * Math.sin(angle - 0.4));
            ctx.moveTo(bx, by);
            ctx.lineTo(bx - 12 * Math.cos(angle + 0.4), by - 12 * Math.sin(angle + 0.4));
            ctx.stroke();
        }
        ctx.fillStyle = "#fff";
        ctx.font = "16px sans-serif";
        if (handle) ctx.fillText(`${i + 1}`, handle.x * width + 4, handle.y * height + 18);
    });
};

app.registerExtension({
    name: "regedit.regions",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        const spec = NODES[nodeData.name];
        if (!spec) return;
        const created = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const result = created?.apply(this, arguments);
            const text = this.widgets?.find((w) => w.name === spec[0]);
            if (text) {
                const panel = new RegionCanvas(this, text, spec[1]);
                this.regeditCanvas = panel;
                this.addDOMWidget("regedit_boxes", "regedit_boxes", panel.root, {serialize: false});
                this.setSize([Math.max(this.size[0], 360), Math.max(this.size[1], 780)]);
                for (const name of ["width", "height"]) {
                    const widget = this.widgets.find((w) => w.name === name);
                    if (!widget) continue;
                    const original = widget.callback;
                    widget.callback = (...args) => {
                        const out = original?.apply(widget, args);
                        panel.draw();
                        return out;
                    };
                }
                requestAnimationFrame(() => panel.select(-1));
            }
            return result;
        };
        const configured = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function () {
            const result = configured?.apply(this, arguments);
            this.regeditCanvas?.draw();  // a loaded workflow's document
            return result;
        };
    },
});
