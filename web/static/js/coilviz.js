/* The coil drawn unrolled: a bar (dashboard) and a map (coil detail), both SVG.
   Length in metres from the coil's head (its weld) runs left to right. A defect sits at the
   metre coil tracking placed it at, with its uncertainty drawn as a band (m - u .. m + u);
   before tracking placed it, at the metre the box sent (hollow marker); a defect tracking put
   on another coil is not drawn here. The map has one lane per surface (top, bottom), the
   strip's width running down each lane (from the defect's place in its image); the weld
   zones at both ends are shaded, the exit coils' cuts drawn as dashed lines. Marker colour is
   the defect type, marker size the severity.

   view = {coil: schedule row, coilNumber, tracking: tracking_coils row or null,
           defects: [...], weldZone: metres, inspected: metres or null (bar)} */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var SURFACES = [["top", "상면", "Top"], ["bottom", "하면", "Bottom"]];

  function svg(tag, attrs) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function t(ko, en) { return window.ccl && ccl.t ? ccl.t(ko, en) : ko; }

  /* Where the defect is drawn on this coil: {m, u (null: the box's metre, untracked)} or null. */
  function place(view, d) {
    if (d.tracking_status === "placed") {
      if (!d.on_coil) { return null; }  // tracking put it on another coil
      return d.tracked_metre === null || d.tracked_metre === undefined ? null : {m: d.tracked_metre, u: d.uncertainty_m || 0};
    }
    if (d.defect_position_meter === null || d.defect_position_meter === undefined) { return null; }
    if (view.coilNumber && d.coil_number !== view.coilNumber) { return null; }
    return {m: d.defect_position_meter, u: null};
  }

  function coilLength(view) {
    var max = 0;
    (view.defects || []).forEach(function (d) {
      var p = place(view, d);
      if (p && p.m + (p.u || 0) > max) { max = p.m + (p.u || 0); }
    });
    var tracking = view.tracking, coil = view.coil;
    // A coil whose tail weld has passed has its tracked length: the map ends there (bands clipped).
    if (tracking && tracking.length_m) { return Math.max(Number(tracking.length_m), 1); }
    var scheduled = coil && coil.length_value ? Number(coil.length_value) : 0;
    return Math.max(scheduled, max, view.inspected || 0, 1);
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

  function describe(d, p) {
    var where = p ? cclFormat.num(p.m, 1) + (p.u !== null ? " ± " + cclFormat.num(p.u, 1) : "") + " m" : "";
    return d.defect_type + " · " + cclFormat.severity(d.severity) + " · " + where + " · " +
      cclFormat.num(d.confidence_score * 100, 0) + "%" + (d.in_weld_zone ? " · " + t("용접부", "weld zone") : "") +
      (p && p.u === null ? " · " + t("추적 전 (박스 위치)", "not tracked yet (box position)") : "");
  }

  function title(node, text) { var tt = svg("title"); tt.textContent = text; node.appendChild(tt); }

  function weldZones(root, view, length, x0, x1, y0, y1) {
    var zone = Number(view.weldZone || 0);
    if (!zone || !view.tracking) { return; }
    var ends = [[0, Math.min(zone, length)]];
    if (view.tracking.length_m) { ends.push([Math.max(0, length - zone), length]); }
    ends.forEach(function (e) {
      var a = x0 + (x1 - x0) * e[0] / length, b = x0 + (x1 - x0) * e[1] / length;
      var r = svg("rect", {x: a, y: y0, width: Math.max(2, b - a), height: y1 - y0, fill: "#f4a261", "fill-opacity": 0.28,
                           "class": "weld-zone"});
      title(r, t("용접부", "Weld zone") + " " + cclFormat.num(zone, 1) + " m");
      root.appendChild(r);
    });
  }

  function cuts(root, view, length, x0, x1, y0, y1) {
    var exits = (view.tracking && view.tracking.exit_coils) || [];
    exits.forEach(function (e, i) {
      if (i === exits.length - 1 && Math.abs(e.end_m - length) < 0.5) { return; }
      var x = x0 + (x1 - x0) * Math.max(0, Math.min(length, e.end_m)) / length;
      var line = svg("line", {x1: x, x2: x, y1: y0 - 4, y2: y1, stroke: "#444", "stroke-dasharray": "4 3", "class": "cut-line"});
      title(line, t("절단", "Cut") + " " + e.piece + ": " + e.coil_number + " · " + cclFormat.num(e.end_m, 1) + " m");
      root.appendChild(line);
    });
  }

  function band(root, p, length, x0, x1, y, colour) {
    if (p.u === null || !(p.u > 0)) { return; }
    var a = x0 + (x1 - x0) * Math.max(0, p.m - p.u) / length, b = x0 + (x1 - x0) * Math.min(length, p.m + p.u) / length;
    root.appendChild(svg("line", {x1: a, x2: b, y1: y, y2: y, stroke: colour, "stroke-width": 3, "stroke-opacity": 0.45,
                                  "class": "band"}));
    [a, b].forEach(function (x) {
      root.appendChild(svg("line", {x1: x, x2: x, y1: y - 4, y2: y + 4, stroke: colour, "stroke-opacity": 0.6, "class": "band"}));
    });
  }

  /* Bar: markers at their metre, the inspected length filled in, weld zones and cuts. */
  function bar(el, view, onPick) {
    el.textContent = "";
    var w = Math.max(300, el.clientWidth || 800), h = 86, x0 = 10, x1 = w - 30, top = 14, bh = 40;
    var root = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img", "class": "coilbar-svg"});
    root.appendChild(svg("rect", {x: x0, y: top, width: x1 - x0, height: bh, rx: 4, fill: "#c9d1d9", stroke: "#8c959f"}));
    var length = coilLength(view);
    var fill = svg("rect", {x: x0, y: top, width: 0, height: bh, rx: 4, fill: "#9fb7cf", "class": "inspected"});
    root.appendChild(fill);
    // The inspected length moves on between two paints (the dashboard calls it every second).
    el.cclInspected = function (metres) {
      var done = metres === null || metres === undefined ? 0 : Math.max(0, Math.min(length, metres));
      fill.setAttribute("width", (x1 - x0) * done / length);
      fill.setAttribute("data-metre", done.toFixed(1));
    };
    el.cclInspected(view.inspected);
    weldZones(root, view, length, x0, x1, top, top + bh);
    cuts(root, view, length, x0, x1, top, top + bh);
    (view.defects || []).forEach(function (d) {
      var p = place(view, d);
      if (!p) { return; }
      var x = x0 + (x1 - x0) * p.m / length, colour = cclFormat.typeColour(d.defect_type);
      var size = cclFormat.severitySize(d.severity);
      var lane = d.surface === "bottom" ? 1 : 0;  // top half: top surface, bottom half: bottom surface
      var y = top + 2 + lane * (bh - 4) / 2;
      band(root, p, length, x0, x1, y + (bh - 4) / 4, colour);
      var mark = svg("rect", {x: x - 1.5, y: y, width: 3, height: (bh - 4) / 2, fill: p.u === null ? "none" : colour,
                              stroke: colour, opacity: 0.5 + Math.min(0.5, size / 18), "data-defect": d.id,
                              "data-metre": p.m.toFixed(2), "class": "marker"});
      title(mark, describe(d, p));
      if (onPick) { mark.addEventListener("click", function () { onPick(d); }); mark.style.cursor = "pointer"; }
      root.appendChild(mark);
    });
    ticks(root, length, x0, x1, top + bh + 2);
    el.appendChild(root);
  }

  /* Map: one lane per surface; length along x, width across y in each lane. */
  function map(el, view, onPick) {
    el.textContent = "";
    var surfaces = SURFACES.slice();
    (view.defects || []).forEach(function (d) {
      if (d.surface && !surfaces.some(function (s) { return s[0] === d.surface; })) { surfaces.push([d.surface, d.surface, d.surface]); }
    });
    var laneH = 150, gap = 26, x0 = 72, top = 22;
    var w = Math.max(300, el.clientWidth || 900), x1 = w - 24;
    var h = top + surfaces.length * (laneH + gap) + 14;
    var root = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img", "class": "coilmap-svg"});
    var length = coilLength(view);
    var coil = view.coil;
    surfaces.forEach(function (surface, lane) {
      var y0 = top + lane * (laneH + gap), y1 = y0 + laneH;
      var g = svg("g", {"data-surface": surface[0], "class": "lane"});
      var name = svg("text", {x: x0, y: y0 - 6, "font-size": 12, "font-weight": 600, fill: "#24292f"});
      name.textContent = t(surface[1], surface[2]);
      g.appendChild(name);
      g.appendChild(svg("rect", {x: x0, y: y0, width: x1 - x0, height: laneH, fill: "#eef1f4", stroke: "#8c959f"}));
      [["0", y0 + 10], [coil && coil.width ? coil.width + " mm" : "1", y1 - 2]].forEach(function (p) {
        var tx = svg("text", {x: x0 - 6, y: p[1], "text-anchor": "end", "font-size": 11, fill: "#5d6670"});
        tx.textContent = p[0]; g.appendChild(tx);
      });
      weldZones(g, view, length, x0, x1, y0, y1);
      cuts(g, view, length, x0, x1, y0, y1);
      (view.defects || []).forEach(function (d) {
        if ((d.surface || "top") !== surface[0]) { return; }
        var p = place(view, d);
        if (!p) { return; }
        // Where across the strip is known only from the defect's image; without one the marker
        // sits on the centre line.
        var known = d.across !== null && d.across !== undefined;
        var cx = x0 + (x1 - x0) * p.m / length;
        var cy = y0 + 4 + (laneH - 8) * (known ? d.across : 0.5);
        var r = cclFormat.severitySize(d.severity);
        var colour = cclFormat.typeColour(d.defect_type);
        band(g, p, length, x0, x1, cy, colour);
        var solid = known && p.u !== null;
        var mark = svg("circle", {cx: cx, cy: cy, r: r, fill: solid ? colour : "none", "fill-opacity": 0.75,
                                  stroke: solid ? (d.severity === "critical" ? "#000" : "#fff") : colour,
                                  "stroke-width": solid ? 1 : 2, "data-defect": d.id, "data-metre": p.m.toFixed(2),
                                  "class": "marker" + (d.in_weld_zone ? " in-weld-zone" : "")});
        title(mark, describe(d, p));
        if (onPick) { mark.addEventListener("click", function () { onPick(d); }); mark.style.cursor = "pointer"; }
        g.appendChild(mark);
      });
      root.appendChild(g);
    });
    ticks(root, length, x0, x1, top + surfaces.length * (laneH + gap) - gap + 2, 12);
    el.appendChild(root);
  }

  /* Periodic series over a drawn map: a dashed line through the members' markers, ringed, and
     the pitch (and the likely roll) written at the first one. */
  function series(el, list) {
    var root = el.querySelector("svg");
    if (!root) { return; }
    (list || []).forEach(function (p) {
      var points = [];
      (p.member_ids || []).forEach(function (id) {
        var c = root.querySelector('circle[data-defect="' + id + '"]');
        if (c) { points.push([Number(c.getAttribute("cx")), Number(c.getAttribute("cy"))]); }
      });
      if (!points.length) { return; }
      var g = svg("g", {"class": "periodic", "data-series": p.id});
      g.appendChild(svg("polyline", {points: points.map(function (q) { return q.join(","); }).join(" "), fill: "none",
                                     stroke: "#b42318", "stroke-width": 1.5, "stroke-dasharray": "4 3"}));
      points.forEach(function (q) {
        g.appendChild(svg("circle", {cx: q[0], cy: q[1], r: 8, fill: "none", stroke: "#b42318", "stroke-width": 1.5}));
      });
      var label = svg("text", {x: points[0][0] + 10, y: Math.max(12, points[0][1] - 10), "font-size": 12, fill: "#b42318",
                               "font-weight": "bold", "class": "pitch"});
      label.textContent = t("주기 ", "pitch ") + Number(p.pitch_m).toFixed(3) + " m" + (p.likely_roll ? " · " + p.likely_roll : "");
      g.appendChild(label);
      root.appendChild(g);
    });
  }

  /* A legend of the defect types present, and of the marks. */
  function legend(el, defects) {
    el.textContent = "";
    var seen = {};
    defects.forEach(function (d) { seen[d.defect_type] = (seen[d.defect_type] || 0) + 1; });
    Object.keys(seen).sort().forEach(function (type) {
      var item = ccl.el("span", {className: "legend-item"}, [
        ccl.el("span", {className: "swatch", style: "background:" + cclFormat.typeColour(type)}), type + " (" + seen[type] + ")"]);
      el.appendChild(item);
    });
    [["legend-band", t("± 추적 불확도", "± tracking uncertainty")], ["legend-weld", t("용접부", "weld zone")],
     ["legend-cut", t("절단 (출측 코일)", "cut (exit coils)")], ["legend-hollow", t("속이 빈 표시: 추적 전, 박스 위치", "hollow: not tracked yet, box position")]]
      .forEach(function (m) { el.appendChild(ccl.el("span", {className: "legend-item " + m[0], text: m[1]})); });
  }

  window.cclCoil = {bar: bar, map: map, legend: legend, place: place, series: series};
})();
