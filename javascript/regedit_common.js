// RegEdit: helpers shared by the region canvas and the drag panel.
// Plain script loaded by the WebUI; everything is under window.RegEditUI. The panels use it only from
// onUiLoaded/onAfterUiUpdate callbacks, so the order in which the WebUI loads these files is free.
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

    // The img2img init image element (gradio 3.41 puts an <img> inside #img2img_image), or null.
    function initImage() {
        const root = byId("img2img_image");
        if (!root) return null;
        for (const img of root.querySelectorAll("img")) {
            if (img.getAttribute("src")) return img;
        }
        return null;
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

    window.RegEditUI = {
        PALETTE, app, byId, fieldTextarea, writeField, outputSize, initImage, ImageTracker, History, clamp, round,
        parseObject, el, isShown, isTextTarget, isUndoKey, isRedoKey, sizeCanvas, fitSize, hexToRgba, drawLabel,
        watch,
    };
})();
