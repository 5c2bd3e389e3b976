// RegEdit: the shape vocabulary of the panels, shared by the region canvas and the drag panel. A shape
// is a polygon ({type: "polygon", points: [[x, y], ...]}) or brush strokes ({type: "mask", strokes:
// [{points: [[x, y], ...], radius}]}), in fractions of the image with a top-left origin, the radius a
// fraction of the width: lib_regedit/documents/shapes.py reads the same JSON. Here: reading and
// writing it, geometry (hit tests, bounding boxes, moves), drawing, and a shape being drawn (a draft).
(function () {
    "use strict";

    const DIGITS = 5;
    const MAX_POLYGON_POINTS = 1000;
    const MAX_STROKES = 64;
    const MAX_STROKE_POINTS = 2000;

    function clamp(v, lo, hi) {
        return Math.min(hi, Math.max(lo, v));
    }

    function round(v, digits) {
        const k = Math.pow(10, digits);
        return Math.round(v * k) / k;
    }

    // ----- the document -----
    function cleanPoint(p) {
        if (!Array.isArray(p) || p.length !== 2) return null;
        const x = Number(p[0]);
        const y = Number(p[1]);
        if (!isFinite(x) || !isFinite(y)) return null;
        return [clamp(x, 0, 1), clamp(y, 0, 1)];
    }

    // A shape from a document, or null when it cannot be drawn. `counts`: the polygon vertex counts
    // allowed (the drag panel's 3 or 4); none: from 3 on.
    function cleanShape(r, counts) {
        if (!r || typeof r !== "object") return null;
        if (r.type === "polygon" && Array.isArray(r.points)) {
            const points = r.points.map(cleanPoint);
            const n = points.length;
            if (points.some((p) => !p) || n < 3 || n > MAX_POLYGON_POINTS || (counts && counts.indexOf(n) < 0)) return null;
            return {type: "polygon", points};
        }
        if (r.type === "mask" && Array.isArray(r.strokes)) {
            const strokes = [];
            for (const s of r.strokes) {
                if (!s || !Array.isArray(s.points) || !s.points.length) return null;
                const points = s.points.map(cleanPoint);
                const radius = Number(s.radius);
                if (points.some((p) => !p) || !(radius > 0)) return null;
                strokes.push({points, radius: Math.min(radius, 0.5)});
            }
            return strokes.length ? {type: "mask", strokes} : null;
        }
        return null;
    }

    function serialiseShape(r) {
        const pt = (p) => [round(p[0], DIGITS), round(p[1], DIGITS)];
        if (r.type === "polygon") return {type: "polygon", points: r.points.map(pt)};
        return {type: "mask", strokes: r.strokes.map((s) => ({points: s.points.map(pt), radius: round(s.radius, DIGITS)}))};
    }

    function describe(r) {
        if (!r) return "\u2026";
        if (r.type === "mask") return "brush";
        return r.points.length === 3 ? "triangle" : r.points.length === 4 ? "quad" : r.points.length + "-gon";
    }

    // ----- geometry -----
    // Even-odd for a simple polygon; the engine fills self-crossing ones by the nonzero rule.
    function insidePolygon(pts, x, y) {
        let inside = false;
        for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
            const [xi, yi] = pts[i];
            const [xj, yj] = pts[j];
            if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
        }
        return inside;
    }

    function segmentDistance(p, a, b) {
        const dx = b[0] - a[0];
        const dy = b[1] - a[1];
        const len2 = dx * dx + dy * dy;
        let t = len2 ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2 : 0;
        t = Math.max(0, Math.min(1, t));
        return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
    }

    // Bounding box of a shape in pixels of a W x H image: [x0, y0, x1, y1].
    function shapeBox(shape, W, H) {
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        const strokes = shape.type === "mask" ? shape.strokes : [{points: shape.points, radius: 0}];
        for (const s of strokes) {
            const r = s.radius * W;
            for (const [x, y] of s.points) {
                x0 = Math.min(x0, x * W - r);
                x1 = Math.max(x1, x * W + r);
                y0 = Math.min(y0, y * H - r);
                y1 = Math.max(y1, y * H + r);
            }
        }
        return [Math.max(0, x0), Math.max(0, y0), Math.min(W, x1), Math.min(H, y1)];
    }

    function shapePoints(shape) {
        return shape.type === "mask" ? shape.strokes.flatMap((s) => s.points) : shape.points;
    }

    function centroid(shape) {
        const pts = shapePoints(shape);
        const n = pts.length || 1;
        return [pts.reduce((a, p) => a + p[0], 0) / n, pts.reduce((a, p) => a + p[1], 0) / n];
    }

    // `shape` moved by (dx, dy) fractions, kept inside the image (every point stays in 0..1).
    function translated(shape, dx, dy) {
        const pts = shapePoints(shape);
        const xs = pts.map((q) => q[0]);
        const ys = pts.map((q) => q[1]);
        dx = clamp(dx, -Math.min(...xs), 1 - Math.max(...xs));
        dy = clamp(dy, -Math.min(...ys), 1 - Math.max(...ys));
        const shift = (q) => [q[0] + dx, q[1] + dy];
        if (shape.type === "polygon") return {type: "polygon", points: shape.points.map(shift)};
        return {type: "mask", strokes: shape.strokes.map((s) => ({points: s.points.map(shift), radius: s.radius}))};
    }

    // Whether the pixel point p ([x, y] in a W x H canvas) is on the shape; a brush within at least
    // minRadiusPx of its strokes, so thin strokes can still be picked.
    function hitShape(shape, p, W, H, minRadiusPx) {
        const px = (q) => [q[0] * W, q[1] * H];
        if (shape.type === "polygon") return insidePolygon(shape.points.map(px), p[0], p[1]);
        for (const s of shape.strokes) {
            const rad = Math.max(s.radius * W, minRadiusPx || 0);
            const pts = s.points.map(px);
            for (let i = 0; i < pts.length; i++) {
                if (segmentDistance(p, pts[i], pts[Math.min(i + 1, pts.length - 1)]) <= rad) return true;
            }
        }
        return false;
    }

    // ----- drawing -----
    function strokePath(ctx, stroke, W, H) {
        const pts = stroke.points;
        ctx.beginPath();
        ctx.moveTo(pts[0][0] * W, pts[0][1] * H);
        if (pts.length === 1) ctx.lineTo(pts[0][0] * W + 0.01, pts[0][1] * H);
        for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0] * W, pts[i][1] * H);
    }

    function polygonPath(ctx, points, W, H, close) {
        ctx.beginPath();
        points.forEach(([x, y], i) => (i ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H)));
        if (close) ctx.closePath();
    }

    // Paint a brush shape's strokes opaquely onto ctx (W x H pixels).
    function paintMask(ctx, shape, W, H, colour) {
        ctx.save();
        ctx.strokeStyle = colour;
        ctx.lineCap = "round";
        ctx.lineJoin = "round";
        for (const s of shape.strokes) {
            ctx.lineWidth = Math.max(1, 2 * s.radius * W);
            strokePath(ctx, s, W, H);
            ctx.stroke();
        }
        ctx.restore();
    }

    // A shape over the canvas: a translucent fill and an outline in `colour` (a polygon), or its
    // strokes in a translucent `colour` (a brush); `alpha` is the fill's opacity.
    function drawShape(ctx, shape, W, H, colour, alpha, lineWidth, hexToRgba) {
        ctx.save();
        if (shape.type === "polygon") {
            polygonPath(ctx, shape.points, W, H, true);
            ctx.fillStyle = hexToRgba(colour, alpha);
            ctx.fill("nonzero");
            ctx.lineWidth = lineWidth + 1;
            ctx.strokeStyle = "rgba(0,0,0,0.5)";
            ctx.stroke();
            ctx.lineWidth = lineWidth;
            ctx.strokeStyle = colour;
            ctx.stroke();
        } else {
            paintMask(ctx, shape, W, H, hexToRgba(colour, Math.min(1, alpha + 0.25)));
        }
        ctx.restore();
    }

    // ----- a shape being drawn -----
    // A polygon clicked vertex by vertex, or brush strokes painted one by one, until it is finished.
    class Draft {
        constructor(type) {
            this.shape = type === "polygon" ? {type: "polygon", points: []} : {type: "mask", strokes: []};
            this.stroke = null;
        }

        get type() {
            return this.shape.type;
        }

        // Adds the vertex p; "close" when the click closes the polygon (on its first vertex, or a double
        // click on its last, with 3 or more), "same" when p repeats the last vertex, else "added".
        // distPx(a, b): the distance in canvas pixels; closePx: how near the first vertex closes it.
        addVertex(p, distPx, closePx) {
            const pts = this.shape.points;
            const last = pts[pts.length - 1];
            if (pts.length >= 3 && (distPx(p, pts[0]) <= closePx || distPx(p, last) <= 3)) return "close";
            if (last && distPx(p, last) <= 3) return "same";
            if (pts.length >= MAX_POLYGON_POINTS) return "same";
            pts.push(p);
            return "added";
        }

        // Starts a stroke of `radius` (a fraction of the width) at p; false when there are enough.
        startStroke(p, radius) {
            if (this.shape.strokes.length >= MAX_STROKES) return false;
            this.stroke = {points: [p], radius};
            this.shape.strokes.push(this.stroke);
            return true;
        }

        // Extends the stroke being painted to p when it is stepPx or more from its last point.
        extendStroke(p, distPx, stepPx) {
            const pts = this.stroke && this.stroke.points;
            if (!pts || pts.length >= MAX_STROKE_POINTS || distPx(p, pts[pts.length - 1]) < stepPx) return false;
            pts.push(p);
            return true;
        }

        endStroke() {
            this.stroke = null;
        }

        // Drops the stroke being painted; true when nothing is left of the draft.
        cancelStroke() {
            if (this.stroke) {
                this.shape.strokes.pop();
                this.stroke = null;
            }
            return this.isEmpty();
        }

        // Drops the last vertex or stroke (undo while drawing); true when nothing is left.
        dropLast() {
            if (this.type === "polygon") this.shape.points.pop();
            else this.shape.strokes.pop();
            this.stroke = null;
            return this.isEmpty();
        }

        isEmpty() {
            return this.type === "polygon" ? !this.shape.points.length : !this.shape.strokes.length;
        }

        // Whether it can be finished now (a polygon of `counts` vertices, or of 3 and more).
        complete(counts) {
            if (this.type === "mask") return this.shape.strokes.length > 0 && !this.stroke;
            const n = this.shape.points.length;
            return counts ? counts.indexOf(n) >= 0 : n >= 3;
        }
    }

    window.RegEditShapes = {
        DIGITS, MAX_POLYGON_POINTS, MAX_STROKES, MAX_STROKE_POINTS,
        cleanPoint, cleanShape, serialiseShape, describe,
        insidePolygon, segmentDistance, shapeBox, shapePoints, centroid, translated, hitShape,
        strokePath, polygonPath, paintMask, drawShape, Draft,
    };
})();
