// The explorer's player: replays the steps that Python computed (tinygrad_edu/viz/explorer.py)
// over the SVG layouts Graphviz made. It computes no number itself: values, gradients, flows,
// colours and norms all come from the page's data. Loads nothing.
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function lastAt(timeline, step) {  // the last [step, ...] entry at or before step
    var found = null;
    for (var i = 0; i < timeline.length && timeline[i][0] <= step; i++) found = timeline[i];
    return found;
  }

  function init(root) {
    var data = JSON.parse(root.querySelector('script[data-role="data"]').textContent);
    var nodes = {}, clusters = {};
    data.nodes.forEach(function (n) { nodes[n.id] = n; });
    data.clusters.forEach(function (c) { clusters[c.id] = c; });
    var stage = root.querySelector('[data-role="stage"]');
    var panel = root.querySelector('[data-role="panel"]');
    var caption = root.querySelector('[data-role="caption"]');
    var counter = root.querySelector('[data-role="counter"]');
    var slider = root.querySelector('[data-action="seek"]');
    var playButton = root.querySelector('[data-action="play"]');
    var search = root.querySelector('[data-action="search"]');
    var results = root.querySelector('[data-role="results"]');
    var last = data.steps.length - 1;
    var step = 0, view = null, timer = null, pinned = null, zoom = null;

    if (!data.clusters.length) {
      root.querySelector('[data-action="expand-all"]').hidden = true;
      root.querySelector('[data-action="collapse-all"]').hidden = true;
    }

    // The values and gradients known after step k.
    function stateAt(k) {
      var values = {}, grads = {}, counts = {};
      for (var s = 0; s <= k && s <= last; s++) {
        var st = data.steps[s];
        if (st.phase === "start") st.values.forEach(function (v) { values[v[0]] = [v[1], v[2]]; });
        else if (st.phase === "forward") values[st.node] = st.value;
        else if (st.phase === "seed") grads[st.node] = st.grad;
        else if (st.phase === "backward") st.contributions.forEach(function (c) {
          grads[c.parent] = c.total; counts[c.parent] = c.count;
        });
      }
      return { values: values, grads: grads, counts: counts };
    }

    function name(id) { return nodes[id].name; }
    function dname(id) { var n = nodes[id].name; return /\s/.test(n) ? "(" + n + ")" : n; }  // for "d a / d b"

    // --- views ---------------------------------------------------------------------------------
    function showView(key) {
      if (!data.views[key]) return;
      view = key;
      root.setAttribute("data-view", key);
      stage.innerHTML = data.views[key].svg;
      var svg = stage.querySelector("svg");
      svg.removeAttribute("height");
      svg.setAttribute("data-width", parseFloat(svg.getAttribute("width")));
      decorate();
      applyZoom();
      render();
    }

    function decorate() {
      stage.querySelectorAll("g.node").forEach(function (g) {
        var id = g.id;
        if (nodes[id]) {
          g.setAttribute("data-node", id);
          g.setAttribute("data-label", nodes[id].label);
          g.setAttribute("data-name", nodes[id].name);
          g.setAttribute("data-value", "");
          g.setAttribute("data-grad", "");
          if (nodes[id].highlight) g.setAttribute("data-culprit", "true");
          g.setAttribute("tabindex", "0");
          g.addEventListener("mouseenter", function () { if (!pinned) showNode(id); });
          g.addEventListener("mouseleave", function () { if (!pinned) showStep(); });
          g.addEventListener("click", function (e) { e.stopPropagation(); pin(id); });
        } else if (/-op$/.test(id)) {
          g.setAttribute("data-op-of", id.slice(0, -3));
        } else if (clusters[id]) {
          g.setAttribute("data-cluster", id);
          g.setAttribute("data-module", clusters[id].module);
          if (clusters[id].highlight) g.setAttribute("data-culprit", "true");
          g.setAttribute("tabindex", "0");
          g.setAttribute("aria-label", "open " + clusters[id].module);
          g.addEventListener("click", function (e) { e.stopPropagation(); showView(id); });
          g.addEventListener("keydown", function (e) { if (e.key === "Enter") showView(id); });
          g.addEventListener("mouseenter", function () { if (!pinned) showCluster(id); });
          g.addEventListener("mouseleave", function () { if (!pinned) showStep(); });
        }
      });
      stage.querySelectorAll("g.cluster").forEach(function (g) {
        var m = /^(c\d+)-frame$/.exec(g.id);
        if (!m) return;
        g.setAttribute("data-frame", m[1]);
        g.setAttribute("aria-label", "close " + clusters[m[1]].module);
        var tip = document.createElementNS("http://www.w3.org/2000/svg", "title");
        tip.textContent = "click to close " + clusters[m[1]].module;
        g.insertBefore(tip, g.firstChild);
        g.addEventListener("click", function (e) { e.stopPropagation(); showView("collapsed"); });
      });
    }

    function applyZoom() {
      var svg = stage.querySelector("svg");
      if (!svg) return;
      var natural = parseFloat(svg.getAttribute("data-width"));
      var fit = Math.min(1.25, (stage.clientWidth - 20) / natural);
      var scale = zoom === null ? Math.max(fit, 0.45) : zoom;
      svg.style.width = Math.round(natural * scale) + "px";
      svg.style.height = "auto";
    }

    // --- drawing one step ----------------------------------------------------------------------
    function render() {
      var st = stateAt(step);
      var current = data.steps[step];
      root.setAttribute("data-step", String(step));
      root.setAttribute("data-phase", current.phase);
      slider.value = String(step);
      counter.textContent = "step " + step + " / " + last;
      caption.textContent = current.text;
      var receiving = {};
      (current.contributions || []).forEach(function (c) { receiving[c.parent] = true; });

      stage.querySelectorAll("[data-node]").forEach(function (g) {
        var id = g.getAttribute("data-node"), v = st.values[id], gr = st.grads[id];
        g.setAttribute("data-value", v ? String(v[0]) : "");
        g.setAttribute("data-grad", gr ? String(gr[0]) : "");
        var texts = g.querySelectorAll("text"), n = texts.length;
        texts[n - 2].textContent = "data " + (v ? v[1] : "");
        texts[n - 1].textContent = "grad " + (gr ? gr[1] : "");
        texts[n - 2].classList.toggle("pending", !v);
        texts[n - 1].classList.toggle("pending", !gr);
        var node = nodes[id];
        var final = node.final_step !== null && node.final_step !== undefined && step >= node.final_step;
        g.classList.toggle("current", current.node === id && current.phase !== "start");
        g.classList.toggle("receiving", !!receiving[id]);
        g.classList.toggle("vanishing", final && node.health === "vanishing");
        g.classList.toggle("exploding", final && node.health === "exploding");
      });
      stage.querySelectorAll("[data-op-of]").forEach(function (g) {
        g.classList.toggle("current", current.node === g.getAttribute("data-op-of") && current.phase !== "start");
      });
      stage.querySelectorAll("[data-cluster]").forEach(function (g) {
        var c = clusters[g.getAttribute("data-cluster")];
        var norm = lastAt(c.norms, step);
        var texts = g.querySelectorAll("text");
        texts[texts.length - 1].textContent = "grad norm " + (norm ? norm[1] : "");
        g.setAttribute("data-grad-norm", norm ? norm[1] : "");
        var inside = function (id) { return c.nodes.indexOf(id) >= 0; };
        g.classList.toggle("current", current.node !== null && current.phase !== "start" && inside(current.node));
        g.classList.toggle("receiving", Object.keys(receiving).some(inside));
        g.classList.toggle("vanishing", !!(norm && norm[2] === "vanishing"));
        g.classList.toggle("exploding", !!(norm && norm[2] === "exploding"));
      });
      var timelines = data.views[view].edges;
      stage.querySelectorAll("g.edge").forEach(function (g) {
        var line = timelines[g.id];
        if (!line) return;
        var look = lastAt(line, step);
        var path = g.querySelector("path"), heads = g.querySelectorAll("polygon");
        var color = look ? look[1] : "#e4e4e4", width = look ? look[2] : "1";
        var dash = look && look[3] === "dashed" ? "5,3" : (look && look[3] === "dotted" ? "1,3" : "");
        path.setAttribute("stroke", color);
        path.setAttribute("stroke-width", width);
        if (dash) path.setAttribute("stroke-dasharray", dash); else path.removeAttribute("stroke-dasharray");
        heads.forEach(function (h) { h.setAttribute("stroke", color); h.setAttribute("fill", color); });
        g.setAttribute("data-flow", look ? look[4] : "");
        var title = g.querySelector("title") || g.insertBefore(document.createElementNS("http://www.w3.org/2000/svg", "title"), g.firstChild);
        title.textContent = look ? "gradient along this edge: " + look[4] : "no gradient yet";
      });
      if (pinned) showNode(pinned); else showStep();
    }

    // --- the side panel ------------------------------------------------------------------------
    function row(table, key, value, code) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, key));
      var td = el("td");
      td.appendChild(code ? el("code", {}, value) : document.createTextNode(value));
      tr.appendChild(td);
      table.appendChild(tr);
    }

    function showStep() {
      var st = data.steps[step];
      panel.innerHTML = "";
      if (st.phase !== "backward") {
        panel.appendChild(el("h2", {}, st.phase === "forward" ? "Forward pass" : (st.phase === "seed" ? "Backward pass" : "Start")));
        panel.appendChild(el("p", {}, st.text));
        panel.appendChild(el("p", { "class": "hint" }, "Hover or click a node for its details. Keys: \u2190 \u2192 step, space plays, Home resets."));
        return;
      }
      var before = stateAt(step - 1).grads;  // updated below: one step may add to a value twice (a + a)
      var node = nodes[st.node];
      panel.appendChild(el("h2", {}, "Backward through " + st.op + ": " + node.name));
      var t = el("table");
      row(t, "rule", st.rule, true);
      row(t, "upstream gradient", "d " + dname(data.root) + " / d " + dname(st.node) + " = " + st.upstream[1]);
      panel.appendChild(t);
      st.contributions.forEach(function (c) {
        var box = el("div", { "class": "contribution", "data-contribution": c.parent });
        var p = name(c.parent);
        box.appendChild(el("div", {}, "to " + p));
        var f = el("div");
        f.appendChild(document.createTextNode("local derivative "));
        f.appendChild(el("code", {}, c.formula));
        f.appendChild(document.createTextNode(" = " + c.local[1]));
        box.appendChild(f);
        box.appendChild(el("div", {}, "adds " + st.upstream[1] + " \u00d7 " + c.local[1] + " = " + c.value[1]));
        var prev = before[c.parent];
        before[c.parent] = c.total;
        box.appendChild(el("div", {}, c.count > 1 && prev
          ? "its grad = " + prev[1] + " + " + c.value[1] + " = " + c.total[1] + " (the sum of " + c.count + " contributions so far)"
          : "its grad = " + c.total[1]));
        panel.appendChild(box);
      });
    }

    function showNode(id) {
      var node = nodes[id], st = stateAt(step);
      panel.innerHTML = "";
      panel.appendChild(el("h2", {}, node.name));
      var t = el("table");
      if (node.label) row(t, "label", node.label);
      row(t, "kind", node.kind + (node.op ? " (" + node.op + ")" : ""));
      if (node.formula) row(t, "computes", node.formula, true);
      row(t, "data", st.values[id] ? st.values[id][1] : "not computed yet");
      row(t, "grad", st.grads[id] ? st.grads[id][1] : "not reached yet");
      if (node.rule) row(t, "rule", node.rule, true);
      (node.derivatives || []).forEach(function (d) { row(t, "derivative", d, true); });
      if (node.health && step >= node.final_step) row(t, "mark", node.health + " gradient");
      if (node.highlight) row(t, "highlighted", "yes (a gradcheck culprit: its rule fails its own check)");
      panel.appendChild(t);
      if (pinned) panel.appendChild(el("p", { "class": "hint" }, "Click the node again, or press Escape, to go back to the step."));
    }

    function showCluster(id) {
      var c = clusters[id], st = stateAt(step), norm = lastAt(c.norms, step);
      panel.innerHTML = "";
      panel.appendChild(el("h2", {}, c.module));
      var t = el("table");
      row(t, "holds", c.nodes.length + " values, " + c.params.length + " parameters");
      row(t, "grad norm", norm ? norm[1] + " (of its parameters' gradients)" : "not reached yet");
      if (c.highlight) row(t, "highlighted", "holds a highlighted value (a culprit): open it to see which");
      c.params.forEach(function (id) {
        row(t, nodes[id].label.slice(c.module.length + 1), st.grads[id] ? "grad " + st.grads[id][1] : "grad not reached yet");
      });
      panel.appendChild(t);
      panel.appendChild(el("p", { "class": "hint" }, "Click the box to open it; click its frame to close it again."));
    }

    function pin(id) {
      stage.querySelectorAll("[data-node].selected").forEach(function (g) { g.classList.remove("selected"); });
      pinned = pinned === id ? null : id;
      var g = pinned && stage.querySelector('[data-node="' + pinned + '"]');
      if (g) g.classList.add("selected");
      if (pinned) showNode(pinned); else showStep();
    }

    // --- controls ------------------------------------------------------------------------------
    function go(k) {
      step = Math.max(0, Math.min(last, k));
      render();
      if (step === last) stop();
    }
    function stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      playButton.textContent = "play";
      playButton.setAttribute("aria-label", "play");
      root.setAttribute("data-playing", "false");
    }
    function play() {
      if (timer !== null) { stop(); return; }
      if (step === last) step = 0;
      timer = setInterval(function () { go(step + 1); }, 700);
      playButton.textContent = "pause";
      playButton.setAttribute("aria-label", "pause");
      root.setAttribute("data-playing", "true");
    }

    function reveal(id) {
      var node = nodes[id];
      if (!stage.querySelector('[data-node="' + id + '"]')) showView(node.group || "all");
      stage.querySelectorAll("[data-node].found").forEach(function (g) { g.classList.remove("found"); g.removeAttribute("data-found"); });
      var g = stage.querySelector('[data-node="' + id + '"]');
      if (!g) return;
      g.classList.add("found");
      g.setAttribute("data-found", "true");
      if (g.scrollIntoView) g.scrollIntoView({ block: "center", inline: "center" });
      showNode(id);
    }

    function find(text) {
      results.innerHTML = "";
      text = text.trim().toLowerCase();
      if (!text) return [];
      var byLabel = [], byName = [];  // labels first: a search for w.1 finds w.1 before w.1 * x
      data.nodes.forEach(function (n) {
        if (n.label.toLowerCase().indexOf(text) >= 0) byLabel.push(n);
        else if (n.name.toLowerCase().indexOf(text) >= 0) byName.push(n);
      });
      var hits = byLabel.concat(byName).slice(0, 50);
      hits.forEach(function (n) {
        var b = el("button", { type: "button", "data-result": n.id }, n.name + (n.label && n.label !== n.name ? " (" + n.label + ")" : ""));
        b.addEventListener("click", function () { reveal(n.id); results.innerHTML = ""; });
        results.appendChild(b);
      });
      if (!hits.length) results.appendChild(el("div", { "class": "hint" }, "no node matches"));
      return hits;
    }

    var actions = {
      prev: function () { stop(); go(step - 1); },
      next: function () { stop(); go(step + 1); },
      reset: function () { stop(); go(0); },
      play: play,
      "expand-all": function () { showView("all"); },
      "collapse-all": function () { showView("collapsed"); },
      "zoom-in": function () { zoom = currentScale() * 1.25; applyZoom(); },
      "zoom-out": function () { zoom = currentScale() / 1.25; applyZoom(); },
      "zoom-fit": function () { zoom = null; applyZoom(); }
    };
    function currentScale() {
      var svg = stage.querySelector("svg");
      return parseFloat(svg.style.width) / parseFloat(svg.getAttribute("data-width"));
    }
    root.querySelectorAll("button[data-action]").forEach(function (b) {
      b.addEventListener("click", function () { actions[b.getAttribute("data-action")](); });
    });
    slider.addEventListener("input", function () { stop(); go(parseInt(slider.value, 10)); });
    search.addEventListener("input", function () { find(search.value); });
    search.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { var hits = find(search.value); if (hits.length) { reveal(hits[0].id); results.innerHTML = ""; } }
      if (e.key === "Escape") { results.innerHTML = ""; }
    });
    document.addEventListener("keydown", function (e) {
      var tag = (e.target && e.target.tagName) || "";
      var typing = tag === "TEXTAREA" || (tag === "INPUT" && e.target.type !== "range");
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "ArrowRight") { actions.next(); e.preventDefault(); }
      else if (e.key === "ArrowLeft") { actions.prev(); e.preventDefault(); }
      else if (e.key === " " && tag !== "BUTTON") { play(); e.preventDefault(); }
      else if (e.key === "Home") { actions.reset(); e.preventDefault(); }
      else if (e.key === "End") { stop(); go(last); e.preventDefault(); }
      else if (e.key === "Escape" && pinned) { pin(pinned); }
    });
    window.addEventListener("resize", function () { if (zoom === null) applyZoom(); });
    showView(data.start_view);
    root.setAttribute("data-ready", "true");
  }

  document.querySelectorAll("[data-explorer]").forEach(init);
})();
