/* memhound HTML report: renders the JSON in #mh-data (inlined into the
 * page by memhound.html).  Hand-written, no libraries, no network.
 * Sections: overview chart, leaks, cycle churn, icicle graphs, sortable
 * tables. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("mh-data").textContent);
  var FR = DATA.frames || [];
  var SVGNS = "http://www.w3.org/2000/svg";
  var tip = document.getElementById("tip");

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    return e;
  }
  function bytes(n, sign) {
    if (n === null || n === undefined || isNaN(n)) { return "-"; }
    var s = sign && n > 0 ? "+" : "", a = Math.abs(n), u = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (a >= 1024 && i < u.length - 1) { a /= 1024; i++; }
    return s + (n < 0 ? "-" : "") + (i === 0 ? a.toFixed(0) : a.toFixed(1)) + " " + u[i];
  }
  function num(n, sign) {
    if (n === null || n === undefined) { return "-"; }
    return (sign && n > 0 ? "+" : "") + Number(n).toLocaleString("en-US");
  }
  function frameLabel(f) {
    if (!f) { return "?"; }
    var file = String(f[0]), base = file.split("/").pop();
    return (f[2] || "?") + "  " + base + ":" + f[1];
  }
  function showTip(ev, text) {
    tip.textContent = text; tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 320) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  /* ---- line charts (SVG) -------------------------------------------- */
  /* series: [{name, color, pts: [[x, y], ...]}]; marks: [{x, label, cls}] */
  function lineChart(host, series, marks, opts) {
    opts = opts || {};
    var W = host.clientWidth || 800, H = opts.height || 220;
    var L = 70, R = 12, T = 12, B = 26;
    var svg = sv("svg", {"class": "chart", viewBox: "0 0 " + W + " " + H,
                         preserveAspectRatio: "none"});
    svg.style.height = H + "px";
    var xs = [], ys = [0];
    series.forEach(function (s) { s.pts.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    (marks || []).forEach(function (m) { xs.push(m.x); });
    if (!xs.length) { host.appendChild(el("p", {"class": "muted"}, "no data")); return null; }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y1 = Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 <= 0) { y1 = 1; }
    function X(v) { return L + (v - x0) / (x1 - x0) * (W - L - R); }
    function Y(v) { return T + (1 - v / y1) * (H - T - B); }
    svg.appendChild(sv("line", {"class": "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
    svg.appendChild(sv("line", {"class": "axis", x1: L, y1: T, x2: L, y2: H - B}));
    for (var i = 0; i <= 4; i++) {
      var v = y1 * i / 4, t = sv("text", {x: L - 6, y: Y(v) + 4, "text-anchor": "end"});
      t.textContent = opts.yfmt ? opts.yfmt(v) : bytes(v); svg.appendChild(t);
      var tx = sv("text", {x: X(x0 + (x1 - x0) * i / 4), y: H - 8, "text-anchor": "middle"});
      tx.textContent = (x0 + (x1 - x0) * i / 4).toFixed(1) + (opts.xunit || "s"); svg.appendChild(tx);
    }
    (marks || []).forEach(function (m) {
      var ln = sv("line", {"class": m.cls, x1: X(m.x), y1: T, x2: X(m.x), y2: H - B});
      ln.addEventListener("mousemove", function (ev) { showTip(ev, m.label); });
      ln.addEventListener("mouseleave", hideTip);
      svg.appendChild(ln);
      if (m.text) {
        var right = X(m.x) > W - 140;
        var lt = sv("text", {"class": m.cls + "label", x: X(m.x) + (right ? -4 : 4), y: T + 10,
                             "text-anchor": right ? "end" : "start"});
        lt.textContent = m.text; svg.appendChild(lt);
      }
    });
    series.forEach(function (s) {
      if (!s.pts.length) { return; }
      var d = s.pts.map(function (p, k) { return (k ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); }).join("");
      var path = sv("path", {d: d, fill: "none", stroke: s.color, "stroke-width": 2,
                              "class": "series", "data-name": s.name});
      svg.appendChild(path);
    });
    /* hover: nearest point of each series */
    svg.addEventListener("mousemove", function (ev) {
      var r = svg.getBoundingClientRect(), xv = x0 + ((ev.clientX - r.left) * W / r.width - L) / (W - L - R) * (x1 - x0);
      var lines = [(opts.xname || "t") + " = " + xv.toFixed(2) + (opts.xunit || "s")];
      series.forEach(function (s) {
        var best = null;
        s.pts.forEach(function (p) { if (!best || Math.abs(p[0] - xv) < Math.abs(best[0] - xv)) { best = p; } });
        if (best) { lines.push(s.name + ": " + (opts.yfmt ? opts.yfmt(best[1]) : bytes(best[1]))); }
      });
      showTip(ev, lines.join("\n"));
    });
    svg.addEventListener("mouseleave", hideTip);
    host.appendChild(svg);
    if (series.length > 1) {
      var lg = el("div", {"class": "legend"});
      series.forEach(function (s) {
        var sp = el("span"), i2 = el("i"); i2.style.background = s.color;
        sp.appendChild(i2); sp.appendChild(document.createTextNode(s.name)); lg.appendChild(sp);
      });
      host.appendChild(lg);
    }
    return svg;
  }

  /* ---- tracebacks ------------------------------------------------------ */
  function traceback(frames) {
    var box = el("div", {"class": "tb mono"});
    (frames || []).forEach(function (f) {
      var row = el("div", {"class": "frame"});
      row.textContent = (f.function || "?") + "   " + f.filename + ":" + f.lineno;
      box.appendChild(row);
      var src = (DATA.sources || {})[f.filename + ":" + f.lineno];
      if (src) { box.appendChild(el("div", {"class": "src"}, src)); }
    });
    if (!frames || !frames.length) { box.appendChild(el("div", {"class": "muted"}, "no Python frame")); }
    return box;
  }

  /* ---- overview --------------------------------------------------------- */
  function overview(rep) {
    var host = $("overview-chart");
    var tl = rep.timeline || [], gens = rep.generations || [];
    var traced = tl.map(function (p) { return [p.t, p.traced_bytes || 0]; });
    var rss = tl.filter(function (p) { return p.rss_bytes !== null && p.rss_bytes !== undefined; })
                .map(function (p) { return [p.t, p.rss_bytes]; });
    var marks = gens.map(function (g) {
      return {x: g.t, cls: "gen", label: "generation " + g.generation + " at " + Number(g.t).toFixed(2) + "s"};
    });
    var peak = null;
    tl.forEach(function (p) { if (!peak || (p.traced_bytes || 0) > peak.traced_bytes) { peak = p; } });
    if (peak) {
      marks.push({x: peak.t, cls: "peak", text: "peak " + bytes(peak.traced_bytes),
                  label: "highest sample: " + bytes(peak.traced_bytes) + " traced at " + Number(peak.t).toFixed(2) + "s" +
                    ((rep.summary || {}).peak_bytes ? "\ntrue peak (tracer): " + bytes(rep.summary.peak_bytes) : "")});
    }
    if (!tl.length) { host.appendChild(el("p", {"class": "muted"}, "No timeline in this report (a lone snapshot has none).")); return; }
    var series = [{name: "traced memory", color: "var(--traced)", pts: traced}];
    if (rss.length) { series.push({name: "RSS", color: "var(--rss)", pts: rss}); }
    lineChart(host, series, marks);
  }

  /* ---- leaks ------------------------------------------------------------- */
  function leaks(rep) {
    var host = $("leaks"), list = rep.leaks || [];
    $("leak-count").textContent = list.length ? "(" + list.length + ")" : "";
    if (!list.length) { host.appendChild(el("p", {"class": "muted"}, "memhound found no leak.")); return; }
    list.forEach(function (lk, i) {
      var box = el("div", {"class": "leak", id: "leak-" + i});
      var top = (lk.traceback || [])[0];
      box.appendChild(el("h3", {}, "#" + (i + 1) + " " + (lk.kind || "?") + " leak at " +
        (top ? (top.function || "?") + " " + top.filename.split("/").pop() + ":" + top.lineno : "<unknown>")));
      var facts = [bytes(lk.live_bytes) + " live in " + num(lk.live_blocks) + " blocks"];
      if (lk.growth_bytes_per_s !== undefined && lk.growth_bytes_per_s !== null) { facts.push("grows " + bytes(lk.growth_bytes_per_s) + "/s"); }
      if (lk.growth_bytes_per_iteration) { facts.push(bytes(lk.growth_bytes_per_iteration) + "/iteration"); }
      if (lk.confidence !== undefined && lk.confidence !== null) { facts.push("confidence " + Math.round(lk.confidence * 100) + "%"); }
      if (lk.first_generation) { facts.push("since generation " + lk.first_generation); }
      if (lk.retained_bytes) { facts.push("retains " + bytes(lk.retained_bytes)); }
      box.appendChild(el("div", {"class": "muted"}, facts.join(" \u00b7 ")));
      var chart = el("div", {"class": "growth"});
      box.appendChild(chart);
      host.appendChild(box); /* in the page first: the chart needs its width */
      var pts = (lk.series || []).map(function (p) { return [p.t, p.live_bytes]; });
      if (pts.length) { lineChart(chart, [{name: "live bytes", color: "var(--accent)", pts: pts}], [], {height: 140}); }
      box.appendChild(el("h3", {}, "Allocated at"));
      box.appendChild(traceback(lk.traceback));
      if (lk.native_frames && lk.native_frames.length) { /* --native-stack */
        box.appendChild(el("h3", {}, "Native stack (" + num(lk.native_frames_blocks) + " of " + num(lk.live_blocks) + " blocks)"));
        var ns = el("div", {"class": "tb mono"});
        lk.native_frames.forEach(function (f) {
          var where = f.lineno ? "   " + f.filename + ":" + f.lineno : "";
          ns.appendChild(el("div", {"class": "frame"}, (f.function || "??") + "   " +
            String(f.library).split("/").pop() + "+0x" + Number(f.offset).toString(16) + where));
        });
        box.appendChild(ns);
      }
      if (lk.retention_path && lk.retention_path.length) {
        box.appendChild(el("h3", {}, "Kept alive by"));
        var ol = el("ol", {"class": "path mono"});
        lk.retention_path.forEach(function (s) { ol.appendChild(el("li", {}, s.object + "  (" + s.via + ")")); });
        box.appendChild(ol);
      }
      if (lk.types && lk.types.length) {
        box.appendChild(el("div", {"class": "muted"}, "types: " + lk.types.map(function (t) {
          return t.type + " \u00d7" + num(t.count) + " (" + bytes(t.bytes) + ")"; }).join(", ")));
      }
    });
  }

  /* ---- cycle churn (the text report's "Cycle churn" section) ------------- */
  function churn() {
    var c = DATA.churn;
    if (!c || !c.sites || !c.sites.length) { $("churn-section").style.display = "none"; return; }
    $("churn-count").textContent = "(" + c.sites.length + ")";
    $("churn-note").textContent = "Objects the cyclic garbage collector freed, by the line that " +
      "made them: sites with at least " + num(c.min_objects) + " objects. Each cycle costs the " +
      "collector time: break it with a weakref, or clear() it when done, so reference counting frees it.";
    var host = $("churn");
    c.sites.forEach(function (s, i) {
      var box = el("div", {"class": "churn-site", id: "churn-" + i});
      var top = (s.traceback || [])[0];
      box.appendChild(el("h3", {}, "#" + (i + 1) + " " + num(s.objects) + " objects at " +
        (top ? (top.function || "?") + " " + String(top.filename).split("/").pop() + ":" + top.lineno : "<unknown>") +
        (s.children ? " (in " + num(s.children) + " child processes)" : "")));
      var facts = [bytes(s.bytes), "freed in " + num(s.collections) + " collections"];
      if (s.objects_per_s !== null && s.objects_per_s !== undefined) {
        facts.push(num(Math.round(s.objects_per_s)) + " objects/s (" + bytes(s.bytes_per_s) + "/s)");
      }
      facts.push(num(Math.round(s.objects_per_generation)) + " per generation, in " +
        num(s.generations_with_churn) + " generations");
      if (s.by_gc && s.by_gc.length) { facts.push("by gc generation " + s.by_gc.map(function (n) { return num(n); }).join(" / ")); }
      box.appendChild(el("div", {"class": "muted"}, facts.join(" \u00b7 ")));
      box.appendChild(traceback(s.traceback));
      host.appendChild(box);
    });
    var g = c.gc || {}, cs = g.collections || [], total = 0;
    cs.forEach(function (n) { total += n; });
    var line = "gc: " + num(total) + " collections (" + cs.join("/") + "), " + Number(g.seconds || 0).toFixed(3) + " s";
    if (g.share_of_run !== null && g.share_of_run !== undefined) { line += ", " + (g.share_of_run * 100).toFixed(1) + "% of the run"; }
    host.appendChild(el("p", {"class": "muted", id: "churn-gc"}, line));
  }

  /* ---- icicle graph ------------------------------------------------------ */
  function Icicle(host, g) {
    this.host = host; this.g = g; this.n = g.parent.length;
    var kids = []; for (var i = 0; i < this.n; i++) { kids.push([]); }
    for (var j = 1; j < this.n; j++) { kids[g.parent[j]].push(j); }
    kids.forEach(function (k) { k.sort(function (a, b) { return g.size[b] - g.size[a]; }); });
    this.kids = kids; this.root = 0; this.query = "";
  }
  Icicle.prototype.label = function (id) { return id === 0 ? (this.g.root || "all") : frameLabel(FR[this.g.frame[id]]); };
  Icicle.prototype.zoom = function (id) { this.root = id; this.render(); };
  Icicle.prototype.search = function (q) { this.query = q.toLowerCase(); this.render(); };
  Icicle.prototype.matches = function (id) {
    if (!this.query || id === 0) { return false; }
    var f = FR[this.g.frame[id]];
    return !!f && (String(f[2]) + " " + f[0] + ":" + f[1]).toLowerCase().indexOf(this.query) >= 0;
  };
  Icicle.prototype.render = function () {
    var g = this.g, host = this.host, W = host.clientWidth || 900, RH = 20, self = this;
    host.textContent = "";
    var frag = document.createDocumentFragment(), drawn = 0, maxDepth = 0, MAXN = 4000;
    var anc = [], a = this.root;
    while (a !== 0) { a = g.parent[a]; anc.unshift(a); }
    function box(id, x, w, depth, cls) {
      var d = el("div", {"class": "fnode" + (cls ? " " + cls : ""), "data-id": id});
      d.style.left = x + "px"; d.style.width = Math.max(w, 1) + "px"; d.style.top = depth * RH + "px";
      var f = FR[g.frame[id]] || ["", 0, ""];
      var h = 0, s = String(f[0]) + f[2]; for (var k = 0; k < s.length; k++) { h = (h * 31 + s.charCodeAt(k)) | 0; }
      d.style.background = id === 0 ? "#d0d5dd" : "hsl(" + (20 + Math.abs(h) % 40) + "," + (60 + Math.abs(h >> 8) % 30) + "%," + (62 + Math.abs(h >> 16) % 16) + "%)";
      if (w > 30) { d.textContent = self.label(id); }
      if (self.matches(id)) { d.className += " match"; }
      frag.appendChild(d); drawn++; if (depth > maxDepth) { maxDepth = depth; }
    }
    anc.forEach(function (id, depth) { box(id, 0, W, depth, "anc"); });
    var base = anc.length, total = g.size[this.root] || 1;
    var queue = [[this.root, 0, W, base]];
    while (queue.length && drawn < MAXN) {
      var it = queue.shift(), id = it[0], x = it[1], w = it[2], depth = it[3];
      box(id, x, w, depth, "");
      var cx = x;
      this.kids[id].forEach(function (c) {
        var cw = w * g.size[c] / Math.max(g.size[id], 1);
        if (cw >= 2) { queue.push([c, cx, cw, depth + 1]); }
        cx += cw;
      });
    }
    /* search total: matched bytes, not counting a match under a match */
    var matched = 0;
    if (this.query) {
      var st = [[this.root, false]];
      while (st.length) {
        var e = st.pop(), on = !e[1] && this.matches(e[0]);
        if (on) { matched += g.size[e[0]]; }
        this.kids[e[0]].forEach(function (c) { st.push([c, e[1] || on]); });
      }
    }
    host.classList.toggle("searching", !!this.query);
    host.style.height = (maxDepth + 1) * RH + 2 + "px";
    host.appendChild(frag);
    var info = $(host.id + "-info");
    if (info) {
      info.textContent = (this.root ? "zoomed into " + this.label(this.root) + " (" + bytes(total) + "); click the faded bars to zoom out. " : "") +
        (this.query ? "search: " + bytes(matched) + " (" + (100 * matched / total).toFixed(1) + "%) matches \u201c" + this.query + "\u201d" : "");
    }
  };

  function flames() {
    var list = DATA.flames || [], tabs = $("flame-tabs"), host = $("flame"), q = $("flame-search");
    if (!list.length) { $("flame-section").style.display = "none"; return; }
    var graphs = {}, current = null;
    function show(name) {
      current = graphs[name];
      tabs.querySelectorAll("button").forEach(function (b) { b.className = b.getAttribute("data-name") === name ? "on" : ""; });
      current.query = q.value.toLowerCase(); current.render();
    }
    list.forEach(function (g) {
      graphs[g.name] = new Icicle(host, g);
      var b = el("button", {"data-name": g.name}, g.label + " (" + bytes(g.size[0]) + ")");
      b.addEventListener("click", function () { show(g.name); });
      tabs.appendChild(b);
    });
    /* one host for all graphs: events go to the one shown */
    host.addEventListener("click", function (ev) {
      var t = ev.target.closest(".fnode"); if (t && current) { current.zoom(+t.getAttribute("data-id")); }
    });
    host.addEventListener("mousemove", function (ev) {
      var t = ev.target.closest(".fnode"); if (!t || !current) { hideTip(); return; }
      var g = current.g, id = +t.getAttribute("data-id"), f = FR[g.frame[id]];
      showTip(ev, (id && f ? f[2] + "\n" + f[0] + ":" + f[1] + "\n" : "") + bytes(g.size[id]) + " in " +
        num(g.count[id]) + " blocks (" + (100 * g.size[id] / Math.max(g.size[0], 1)).toFixed(1) + "%)");
    });
    host.addEventListener("mouseleave", hideTip);
    q.addEventListener("input", function () { if (current) { current.search(q.value); } });
    $("flame-reset").addEventListener("click", function () { if (current) { current.zoom(0); } });
    window.memhoundFlame = function () { return current; };
    show(list[0].name);
  }

  /* ---- virtualized sortable tables -------------------------------------- */
  /* spec: {id, title, columns: [{key, label, kind: "bytes"|"sbytes"|"num"|"snum"|"frame"|"text", width}],
            data: {key: [values...]}} */
  function VTable(host, spec) {
    this.spec = spec; this.cols = spec.columns;
    var first = this.cols[0].key; this.n = (spec.data[first] || []).length;
    this.order = []; for (var i = 0; i < this.n; i++) { this.order.push(i); }
    this.view = this.order; this.RH = 24;
    var self = this, box = el("div", {"class": "vtable", id: spec.id});
    box.style.setProperty("--cols", this.cols.map(function (c) { return c.width || "1fr"; }).join(" "));
    var head = el("div", {"class": "head"});
    this.cols.forEach(function (c, k) {
      var h = el("div", {"class": c.kind === "frame" || c.kind === "text" ? "" : "num", "data-col": k}, c.label);
      h.addEventListener("click", function () { self.sort(k); });
      head.appendChild(h);
    });
    this.head = head;
    var body = el("div", {"class": "body"}), spacer = el("div");
    body.appendChild(spacer); this.body = body; this.spacer = spacer;
    body.addEventListener("scroll", function () { self.draw(); });
    box.appendChild(head); box.appendChild(body); host.appendChild(box);
    this.sortCol = -1; this.asc = false;
  }
  VTable.prototype.cell = function (c, i) {
    var v = this.spec.data[c.key][i];
    switch (c.kind) {
      case "bytes": return bytes(v);
      case "sbytes": return bytes(v, true);
      case "num": return num(v);
      case "snum": return num(v, true);
      case "frame": var f = FR[v]; return f ? (f[2] ? f[2] + "  " : "") + f[0] + (f[1] ? ":" + f[1] : "") : "?";
      default: return v;
    }
  };
  VTable.prototype.sort = function (k) {
    var c = this.cols[k], col = this.spec.data[c.key], self = this;
    this.asc = this.sortCol === k ? !this.asc : (c.kind === "frame" || c.kind === "text");
    this.sortCol = k;
    var dir = this.asc ? 1 : -1;
    var keyOf = c.kind === "frame" ? function (i) { return self.cell(c, i); } : function (i) {
      var v = col[i]; return (c.kind === "sbytes" || c.kind === "snum") ? Math.abs(v) : v; };
    var keys = new Array(this.n); for (var i = 0; i < this.n; i++) { keys[i] = keyOf(i); }
    this.order.sort(function (a, b) { return keys[a] < keys[b] ? -dir : keys[a] > keys[b] ? dir : a - b; });
    this.head.querySelectorAll("div").forEach(function (h, j) {
      h.classList.toggle("sorted", j === k); h.classList.toggle("asc", j === k && self.asc);
    });
    this.filter(this.q || "");
  };
  VTable.prototype.filter = function (q) {
    this.q = q; q = q.toLowerCase();
    var self = this, fc = this.cols.filter(function (c) { return c.kind === "frame" || c.kind === "text"; });
    this.view = !q ? this.order : this.order.filter(function (i) {
      return fc.some(function (c) { return String(self.cell(c, i)).toLowerCase().indexOf(q) >= 0; }); });
    this.spacer.style.height = this.view.length * this.RH + "px";
    this.body.style.height = Math.min(360, Math.max(this.view.length, 1) * this.RH + 2) + "px";
    this.body.scrollTop = 0; this.draw();
  };
  VTable.prototype.draw = function () {
    var top = this.body.scrollTop, h = this.body.clientHeight || 360;
    var a = Math.max(0, Math.floor(top / this.RH) - 5), b = Math.min(this.view.length, Math.ceil((top + h) / this.RH) + 5);
    var rows = this.body.querySelectorAll(".row"); rows.forEach(function (r) { r.remove(); });
    var frag = document.createDocumentFragment(), self = this;
    for (var r = a; r < b; r++) {
      var i = this.view[r], row = el("div", {"class": "row", "data-index": i});
      row.style.top = r * this.RH + "px";
      this.cols.forEach(function (c) {
        var v = self.cell(c, i), raw = self.spec.data[c.key][i];
        var cls = c.kind === "frame" || c.kind === "text" ? "" : "num";
        if ((c.kind === "sbytes" || c.kind === "snum") && raw) { cls += raw > 0 ? " pos" : " neg"; }
        var d = el("div", {"class": cls, title: v}, v); row.appendChild(d);
      });
      frag.appendChild(row);
    }
    this.body.appendChild(frag);
  };

  function tables() {
    var host = $("tables");
    (DATA.tables || []).forEach(function (spec) {
      var sec = el("section", {"class": "tsec"});
      sec.appendChild(el("h2", {}, spec.title + " (" + num((spec.data[spec.columns[0].key] || []).length) + ")"));
      if (spec.note) { sec.appendChild(el("p", {"class": "muted"}, spec.note)); }
      var bar = el("div", {"class": "toolbar"}), inp = el("input", {type: "search", placeholder: "filter by name", id: spec.id + "-filter"});
      bar.appendChild(inp); sec.appendChild(bar); host.appendChild(sec);
      var t = new VTable(sec, spec);
      inp.addEventListener("input", function () { t.filter(inp.value); });
      t.sort(spec.sortBy || 0);
      (window.memhoundTables = window.memhoundTables || {})[spec.id] = t;
    });
  }

  /* ---- page ---------------------------------------------------------------- */
  function summary(rep) {
    var s = rep.summary || {}, host = $("cards");
    function card(label, value) { var c = el("div", {"class": "card"}); c.appendChild(el("b", {}, value)); c.appendChild(document.createTextNode(label)); host.appendChild(c); }
    if (DATA.mode === "diff") {
      card("total change", bytes(DATA.diff.size_diff, true));
      card("now live", bytes(DATA.diff.size));
      card("keys compared", num(DATA.diff.rows));
      return;
    }
    card("live at exit", bytes(s.traced_bytes));
    if (s.peak_bytes !== null && s.peak_bytes !== undefined) { card("peak traced", bytes(s.peak_bytes)); }
    card("leaks", num((rep.leaks || []).length));
    card("allocation sites", num(s.sites));
    if (s.generations) { card("generations", num(s.generations)); }
    if (rep.duration_s !== null && rep.duration_s !== undefined) { card("duration", Number(rep.duration_s).toFixed(1) + " s"); }
  }

  function main() {
    var rep = DATA.report || {};
    $("title").textContent = DATA.title;
    $("subtitle").textContent = DATA.subtitle || "";
    (rep.warnings || []).concat(DATA.warnings || []).forEach(function (w) { $("warnings").appendChild(el("div", {"class": "warn"}, w)); });
    summary(rep);
    if (DATA.mode === "diff") { $("overview-section").style.display = "none"; $("leaks-section").style.display = "none"; }
    else { overview(rep); leaks(rep); }
    churn(); /* hidden unless DATA.churn has sites (the diff page has none) */
    flames();
    tables();
    document.body.setAttribute("data-rendered", "1");
  }
  try { main(); } catch (e) {
    document.body.setAttribute("data-error", String(e && e.stack || e));
    throw e;
  }
})();
