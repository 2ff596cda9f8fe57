/* Image viewer: original/labeled toggle, grey/colour toggle, zoom (wheel, buttons) and pan
   (drag), the boxes of the image's defects drawn over it. Images come by database id only.
   cclViewer.open(imageId) */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var state = null, root = null;

  function t(ko, en) { return ccl.t(ko, en); }

  function build() {
    root = ccl.el("div", {className: "viewer", hidden: "hidden", role: "dialog", "aria-label": t("이미지 보기", "Image viewer")});
    var bar = ccl.el("div", {className: "viewer-bar"});
    function button(label, action, id) {
      var b = ccl.el("button", {type: "button", "data-action": action, id: id || ""}, [label]);
      bar.appendChild(b);
      return b;
    }
    button(t("원본", "Original"), "original", "viewer-original");
    button(t("라벨", "Labeled"), "labeled", "viewer-labeled");
    button(t("흑백", "Grey"), "grey", "viewer-grey");
    button(t("결함 표시", "Show defects"), "boxes", "viewer-boxes");
    button("+", "zoomin");
    button("−", "zoomout");
    button(t("원래 크기", "Fit"), "fit");
    bar.appendChild(ccl.el("span", {className: "viewer-caption", id: "viewer-caption"}));
    button(t("닫기", "Close"), "close", "viewer-close");
    var stage = ccl.el("div", {className: "viewer-stage"});
    var canvas = ccl.el("div", {className: "viewer-canvas"});
    var img = ccl.el("img", {alt: "", id: "viewer-image", draggable: "false"});
    var overlay = document.createElementNS(NS, "svg");
    overlay.setAttribute("class", "viewer-boxes");
    canvas.appendChild(img); canvas.appendChild(overlay); stage.appendChild(canvas);
    root.appendChild(bar); root.appendChild(stage);
    document.body.appendChild(root);
    state = {img: img, overlay: overlay, canvas: canvas, stage: stage, bar: bar, scale: 1, x: 0, y: 0,
             grey: false, boxes: true, ids: {}, kind: "original", defects: [], natural: {w: 1, h: 1}};

    bar.addEventListener("click", function (e) {
      var action = e.target.getAttribute && e.target.getAttribute("data-action");
      if (!action) { return; }
      if (action === "original" || action === "labeled") { show(action); }
      else if (action === "grey") { state.grey = !state.grey; paint(); }
      else if (action === "boxes") { state.boxes = !state.boxes; paint(); }
      else if (action === "zoomin") { zoomAt(1.25); }
      else if (action === "zoomout") { zoomAt(0.8); }
      else if (action === "fit") { fit(); }
      else if (action === "close") { close(); }
    });
    stage.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = stage.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
    }, {passive: false});
    var drag = null;
    stage.addEventListener("mousedown", function (e) { drag = {x: e.clientX - state.x, y: e.clientY - state.y}; stage.classList.add("dragging"); });
    window.addEventListener("mousemove", function (e) { if (drag) { state.x = e.clientX - drag.x; state.y = e.clientY - drag.y; place(); } });
    window.addEventListener("mouseup", function () { drag = null; stage.classList.remove("dragging"); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !root.hidden) { close(); } });
    img.addEventListener("load", function () {
      state.natural = {w: img.naturalWidth || 1, h: img.naturalHeight || 1};
      if (!state.placed) { fit(); state.placed = true; } else { place(); }
      paint();
    });
  }

  function place() {
    state.canvas.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
  }

  function fit() {
    var r = state.stage.getBoundingClientRect();
    state.scale = Math.min(r.width / state.natural.w, r.height / state.natural.h) || 1;
    state.x = (r.width - state.natural.w * state.scale) / 2;
    state.y = (r.height - state.natural.h * state.scale) / 2;
    place();
  }

  function zoomAt(factor, cx, cy) {
    var r = state.stage.getBoundingClientRect();
    if (cx === undefined) { cx = r.width / 2; cy = r.height / 2; }
    var next = Math.max(0.05, Math.min(20, state.scale * factor));
    state.x = cx - (cx - state.x) * next / state.scale;
    state.y = cy - (cy - state.y) * next / state.scale;
    state.scale = next;
    place();
  }

  function paint() {
    state.img.style.filter = state.grey ? "grayscale(1)" : "none";
    state.bar.querySelector("#viewer-grey").textContent = state.grey ? t("컬러", "Colour") : t("흑백", "Grey");
    state.bar.querySelector("#viewer-boxes").classList.toggle("on", state.boxes);
    ["original", "labeled"].forEach(function (k) {
      var b = state.bar.querySelector("#viewer-" + k);
      b.disabled = !state.ids[k];
      b.classList.toggle("on", state.kind === k);
    });
    var o = state.overlay;
    while (o.firstChild) { o.removeChild(o.firstChild); }
    o.setAttribute("viewBox", "0 0 " + state.natural.w + " " + state.natural.h);
    o.setAttribute("width", state.natural.w);
    o.setAttribute("height", state.natural.h);
    if (!state.boxes) { return; }
    // Boxes are in the pixels of the image the defect was found on; scale if this one differs.
    var sx = state.natural.w / (state.recordWidth || state.natural.w), sy = state.natural.h / (state.recordHeight || state.natural.h);
    state.defects.forEach(function (d) {
      if (d.defect_position_x === null || d.defect_position_y === null) { return; }
      var w = Math.max(d.defect_size_width || 0, 8), h = Math.max(d.defect_size_height || 0, 8);
      var box = document.createElementNS(NS, "rect");
      box.setAttribute("x", d.defect_position_x * sx); box.setAttribute("y", d.defect_position_y * sy);
      box.setAttribute("width", w * sx); box.setAttribute("height", h * sy);
      box.setAttribute("class", "defect-box");
      box.setAttribute("stroke", cclFormat.typeColour(d.defect_type));
      box.setAttribute("data-defect", d.id);
      o.appendChild(box);
      var label = document.createElementNS(NS, "text");
      label.setAttribute("x", d.defect_position_x * sx); label.setAttribute("y", Math.max(14, d.defect_position_y * sy - 4));
      label.setAttribute("fill", cclFormat.typeColour(d.defect_type));
      label.setAttribute("class", "defect-label");
      label.setAttribute("font-size", Math.max(12, Math.round(state.natural.w / 45)));
      label.textContent = d.defect_type + " " + Math.round(d.confidence_score * 100) + "%";
      o.appendChild(label);
    });
  }

  function show(kind) {
    if (!state.ids[kind]) { return; }
    state.kind = kind;
    state.img.src = "/images/" + state.ids[kind];
    paint();
  }

  function open(imageId) {
    if (!root) { build(); }
    state.placed = false;
    return ccl.api("/api/images/" + imageId).then(function (record) {
      state.ids = {};
      state.ids[record.kind] = record.id;
      if (record.partner) { state.ids[record.partner.kind] = record.partner.id; }
      state.defects = record.defects || [];
      state.recordWidth = record.width; state.recordHeight = record.height;
      document.getElementById("viewer-caption").textContent =
        record.coil_number + " · " + cclFormat.when(record.captured_at) + " · " + state.defects.length + " " + t("결함", "defects");
      root.hidden = false;
      show(record.kind);
      if (record.partner && record.kind === "labeled") {
        // defects may point at the original only: ask for its boxes too
        ccl.api("/api/images/" + record.partner.id).then(function (other) {
          var seen = {};
          state.defects.forEach(function (d) { seen[d.id] = true; });
          (other.defects || []).forEach(function (d) { if (!seen[d.id]) { state.defects.push(d); } });
          paint();
        });
      }
    });
  }

  function close() { if (root) { root.hidden = true; state.img.removeAttribute("src"); } }

  window.cclViewer = {open: open, close: close};
})();
