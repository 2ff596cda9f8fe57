/* The coil drawn unrolled: a bar (dashboard) and a map (coil detail), both SVG.
   Length in metres runs left to right; on the map the strip's width runs top to bottom
   (0 = one edge, 1 = the other, from the defect's place in its image). Marker colour is the
   defect type, marker size the severity. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function coilLength(coil, defects) {
    var max = 0;
    defects.forEach(function (d) { if (d.defect_position_meter > max) { max = d.defect_position_meter; } });
    var scheduled = coil && coil.length_value ? Number(coil.length_value) : 0;
    return Math.max(scheduled, max, 1);
  }

  function ticks(g, length, x0, x1, y, step) {
    var every = [10, 50, 100, 200, 500, 1000, 2000, 5000].find(function (s) { return length / s <= (step || 10); }) || 10000;
    for (var m = 0; m <= length + 0.001; m += every) {
      var x = x0 + (x1 - x0) * m / length;
      g.appendChild(svg("line", {x1: x, x2: x, y1: y, y2: y + 5, stroke: "#5d6670"}));
      var label = svg("text", {x: x, y: y + 17, "text-anchor": "middle", "font-size": 11, fill: "#5d6670"});
      label.textContent = m + " m";
      g.appendChild(label);
    }
  }

  function title(node, d) {
    var t = svg("title");
    t.textContent = d.defect_type + " · " + cclFormat.severity(d.severity) + " · " +
      cclFormat.num(d.defect_position_meter, 1) + " m · " + cclFormat.num(d.confidence_score * 100, 0) + "%";
    node.appendChild(t);
  }

  /* Bar: markers at their metre position, stacked a little by type so they stay visible. */
  function bar(el, coil, defects, onPick) {
    el.textContent = "";
    var w = Math.max(300, el.clientWidth || 800), h = 86, x0 = 10, x1 = w - 30, top = 14, bh = 40;
    var root = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img", "class": "coilbar-svg"});
    root.appendChild(svg("rect", {x: x0, y: top, width: x1 - x0, height: bh, rx: 4, fill: "#c9d1d9", stroke: "#8c959f"}));
    var length = coilLength(coil, defects);
    defects.forEach(function (d) {
      if (d.defect_position_meter === null || d.defect_position_meter === undefined) { return; }
      var x = x0 + (x1 - x0) * d.defect_position_meter / length;
      var size = cclFormat.severitySize(d.severity);
      var mark = svg("rect", {x: x - 1.5, y: top + 2, width: 3, height: bh - 4, fill: cclFormat.typeColour(d.defect_type),
                              opacity: 0.5 + Math.min(0.5, size / 18), "data-defect": d.id});
      title(mark, d);
      if (onPick) { mark.addEventListener("click", function () { onPick(d); }); mark.style.cursor = "pointer"; }
      root.appendChild(mark);
    });
    ticks(root, length, x0, x1, top + bh + 2);
    el.appendChild(root);
  }

  /* Map: length along x, width across y; one marker per defect. */
  function map(el, coil, defects, onPick) {
    el.textContent = "";
    var w = Math.max(300, el.clientWidth || 900), h = 240, x0 = 72, x1 = w - 24, y0 = 12, y1 = h - 40;
    var root = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img", "class": "coilmap-svg"});
    root.appendChild(svg("rect", {x: x0, y: y0, width: x1 - x0, height: y1 - y0, fill: "#eef1f4", stroke: "#8c959f"}));
    [["0", y0 + 10], [coil && coil.width ? coil.width + " mm" : "1", y1 - 2]].forEach(function (p) {
      var t = svg("text", {x: x0 - 6, y: p[1], "text-anchor": "end", "font-size": 11, fill: "#5d6670"});
      t.textContent = p[0]; root.appendChild(t);
    });
    var length = coilLength(coil, defects);
    defects.forEach(function (d, i) {
      if (d.defect_position_meter === null || d.defect_position_meter === undefined) { return; }
      // Where across the strip is known only from the defect's image; without one the marker
      // sits on the centre line, hollow.
      var known = d.across !== null && d.across !== undefined;
      var cx = x0 + (x1 - x0) * d.defect_position_meter / length;
      var cy = y0 + 4 + (y1 - y0 - 8) * (known ? d.across : 0.5);
      var r = cclFormat.severitySize(d.severity);
      var colour = cclFormat.typeColour(d.defect_type);
      var mark = svg("circle", {cx: cx, cy: cy, r: r, fill: known ? colour : "none", "fill-opacity": 0.75,
                                stroke: known ? (d.severity === "critical" ? "#000" : "#fff") : colour,
                                "stroke-width": known ? 1 : 2, "data-defect": d.id, "class": "marker"});
      title(mark, d);
      if (onPick) { mark.addEventListener("click", function () { onPick(d); }); mark.style.cursor = "pointer"; }
      root.appendChild(mark);
    });
    ticks(root, length, x0, x1, y1 + 2, 12);
    el.appendChild(root);
  }

  /* A legend of the defect types present. */
  function legend(el, defects) {
    el.textContent = "";
    var seen = {};
    defects.forEach(function (d) { seen[d.defect_type] = (seen[d.defect_type] || 0) + 1; });
    Object.keys(seen).sort().forEach(function (type) {
      var item = ccl.el("span", {className: "legend-item"}, [
        ccl.el("span", {className: "swatch", style: "background:" + cclFormat.typeColour(type)}), type + " (" + seen[type] + ")"]);
      el.appendChild(item);
    });
  }

  window.cclCoil = {bar: bar, map: map, legend: legend};
})();
