/* 실시간 모니터링: paints the state embedded in the page, then follows /api/events and
   fetches only the part that an event says changed (/api/dashboard?part=...). */
(function () {
  "use strict";
  var F = cclFormat, t = ccl.t;
  var state = JSON.parse(document.getElementById("dashboard-state").textContent);
  var settings = JSON.parse(document.getElementById("dashboard-settings").textContent);
  var FEED_ROWS = 30, SPEED_WINDOW = 30 * 60;
  // The newest speed is held this long past its sample when the inspected metre is carried
  // forward (the MES sends one every 3 s; beyond this the line's motion is unknown).
  var HOLD_SPEED_S = 6;
  var COMPLETENESS = {complete: ["완전", "Complete"], partial: ["일부 누락", "Partial"], unknown: ["검사율 미상", "Coverage unknown"],
                      running: ["진행 중", "Running"], none: ["추적 데이터 없음", "No tracking data"]};
  var SURFACE = {top: ["상면", "Top"], bottom: ["하면", "Bottom"]};
  var speedPlot = null, lastDefectId = 0, grey = false;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value === null || value === undefined ? "" : value; }

  function paintCoil(coil) {
    $("coil-none").hidden = !!coil;
    text("coil-number", coil ? coil.coil_number : "—");
    text("coil-customer", coil ? coil.customer_name : "");
    text("coil-bom", coil ? coil.ccl_bom : "");
    text("coil-size", coil && coil.thickness !== null ? F.num(coil.thickness, 2) + " × " + F.num(coil.width) + " mm" : "");
    text("coil-length", coil && coil.length_value !== null ? F.num(coil.length_value) + " m" : "");
    text("coil-wpd", coil ? F.when(coil.wpd_at) : "");
    if (coil) { $("coil-number").setAttribute("data-coil", coil.coil_number); }
    var tracking = coil && coil.tracking, key = tracking ? tracking.completeness : "none";
    var badge = $("coil-completeness");
    badge.textContent = "";
    if (coil) {
      badge.appendChild(ccl.el("span", {className: "comp comp-" + key, "data-completeness": key,
                                         text: t(COMPLETENESS[key][0], COMPLETENESS[key][1])}));
    }
    paintInspected();
  }

  /* Metres the strip moved between two moments, from the speed points (m/min): linear
     between points (as tracking integrates), the newest held for HOLD_SPEED_S at most. */
  function travelled(from, to) {
    var points = state.speed.map(function (p) { return [Date.parse(p.t) / 1000, p.v]; });
    var metres = 0;
    for (var i = 0; i < points.length; i++) {
      var a = points[i], b = points[i + 1] || [Math.min(to, a[0] + HOLD_SPEED_S), a[1]];
      var lo = Math.max(from, a[0]), hi = Math.min(to, b[0]);
      if (hi <= lo) { continue; }
      var slope = b[0] > a[0] ? (b[1] - a[1]) / (b[0] - a[0]) : 0;
      var vlo = a[1] + slope * (lo - a[0]), vhi = a[1] + slope * (hi - a[0]);
      metres += (vlo + vhi) / 2 / 60 * (hi - lo);
    }
    return metres;
  }

  /* The current coil's inspected metre per camera: what tracking computed, carried forward
     with the live speed since, never past the coil's tracked length. */
  function inspectedNow() {
    var tracking = state.coil && state.coil.tracking;
    if (!tracking || !tracking.inspected_m) { return null; }
    var moved = travelled(Date.parse(tracking.computed_at) / 1000, Date.now() / 1000);
    var found = {};
    var order = ["top", "bottom"];  // the surfaces first, in this order, then any other camera
    Object.keys(tracking.inspected_m).sort(function (a, b) {
      var i = order.indexOf(a) < 0 ? 9 : order.indexOf(a), j = order.indexOf(b) < 0 ? 9 : order.indexOf(b);
      return i - j || (a < b ? -1 : a > b ? 1 : 0);
    }).forEach(function (camera) {
      var m = Number(tracking.inspected_m[camera]);
      var reached = tracking.head_at_camera && tracking.head_at_camera[camera];
      var value = reached || m > 0 ? m + moved : m;
      found[camera] = tracking.length_m ? Math.min(value, Number(tracking.length_m)) : value;
    });
    return found;
  }

  function paintInspected() {
    var el = $("coil-inspected"), found = inspectedNow();
    if (!found) { el.textContent = state.coil ? "—" : ""; el.removeAttribute("data-metre"); return null; }
    var cameras = Object.keys(found);
    el.textContent = cameras.map(function (c) {
      var s = SURFACE[c];
      return (s ? t(s[0], s[1]) : c) + " " + F.num(found[c], 1) + " m";
    }).join(" · ");
    var most = Math.max.apply(null, cameras.map(function (c) { return found[c]; }));
    el.setAttribute("data-metre", most.toFixed(1));
    return most;
  }

  function paintSpeed(points) {
    var x = [], y = [];
    points.forEach(function (p) { x.push(Date.parse(p.t) / 1000); y.push(p.v); });
    state.speed = points;
    if (!speedPlot) {
      speedPlot = cclCharts.timeLine($("speed-chart"), {x: x, y: y, label: t("라인 속도", "Line speed"), unit: "m/min", height: 200});
    } else {
      speedPlot.setData([x, y]);
    }
    var last = points.length ? points[points.length - 1] : null;
    text("speed-now", last ? F.num(last.v) + " m/min" : "");
    $("speed-chart").setAttribute("data-points", points.length);
    $("speed-chart").setAttribute("data-last", points.reduce(function (m, p) { return Math.max(m, p.id); }, 0));
  }

  function addSpeed(points) {
    var seen = {};
    state.speed.forEach(function (p) { seen[p.id] = true; });
    // a journal replay can store old telegrams late: keep the chart in time order
    var merged = state.speed.concat(points.filter(function (p) { return !seen[p.id]; }))
      .sort(function (a, b) { return Date.parse(a.t) - Date.parse(b.t); });
    var cutoff = Date.now() / 1000 - SPEED_WINDOW;
    paintSpeed(merged.filter(function (p) { return Date.parse(p.t) / 1000 >= cutoff; }));
  }

  function paintImages(pair) {
    var o = pair && pair.original, l = pair && pair.labeled;
    [["latest-original", o], ["latest-labeled", l]].forEach(function (item) {
      var img = $(item[0]);
      if (item[1]) {
        var src = "/images/" + item[1].id;
        if (img.getAttribute("src") !== src) { img.src = src; }
        img.setAttribute("data-image", item[1].id);
        img.hidden = false;
      } else { img.removeAttribute("src"); img.hidden = true; }
    });
    text("latest-caption", o ? o.coil_number + " · " + F.when(o.captured_at) : t("이미지가 없습니다.", "No images."));
  }

  function defectRow(d, fresh) {
    var tr = ccl.el("tr", {className: fresh ? "fresh sev-" + d.severity : "sev-" + d.severity, "data-defect": d.id}, [
      ccl.el("td", {text: F.when(d.detection_time)}),
      ccl.el("td", {}, [ccl.el("a", {href: "/coils/" + encodeURIComponent(d.coil_number), text: d.coil_number})]),
      ccl.el("td", {text: SURFACE[d.surface] ? t(SURFACE[d.surface][0], SURFACE[d.surface][1]) : (d.surface || "")}),
      ccl.el("td", {}, [ccl.el("span", {className: "swatch", style: "background:" + F.typeColour(d.defect_type)}), d.defect_type]),
      ccl.el("td", {}, [ccl.el("span", {className: "sev sev-" + d.severity, text: F.severity(d.severity)})]),
      ccl.el("td", {className: "num", text: F.num(d.confidence_score * 100, 1) + "%"}),
      ccl.el("td", {className: "num metre-cell"}, position(d))]);
    return tr;
  }

  /* The tracked metre with its band and marks, or the box's metre (muted) before tracking. */
  function position(d) {
    if (d.tracking_status === "placed") {
      var parts = [ccl.el("span", {className: "metre", text: F.num(d.tracked_metre, 1)}),
                   ccl.el("span", {className: "pm muted", text: " ± " + F.num(d.uncertainty_m, 1)})];
      if (d.tracked_coil && d.tracked_coil !== d.coil_number) {
        parts.push(ccl.el("span", {className: "tag tag-elsewhere", text: d.tracked_coil}));
      }
      if (d.in_weld_zone) { parts.push(ccl.el("span", {className: "tag tag-weld", text: t("용접부", "Weld zone")})); }
      if (d.coil_disagrees) { parts.push(ccl.el("span", {className: "tag tag-disagree", text: t("코일 번호 불일치", "Coil number disagrees")})); }
      return parts;
    }
    var boxMetre = d.defect_position_meter === null || d.defect_position_meter === undefined ? "—" : F.num(d.defect_position_meter, 1);
    return [ccl.el("span", {className: "muted", title: t("추적 전: 박스가 보낸 위치", "Not tracked yet: the position the box sent"),
                            text: boxMetre})];
  }

  function paintFeed(defects, fresh) {
    var body = document.querySelector("#feed tbody");
    var ordered = defects.slice().sort(function (a, b) { return a.id - b.id; });  // oldest first, prepend each
    ordered.forEach(function (d) {
      if (d.id <= lastDefectId && fresh) { return; }
      body.insertBefore(defectRow(d, fresh), body.firstChild);
      lastDefectId = Math.max(lastDefectId, d.id);
    });
    while (body.rows.length > FEED_ROWS) { body.deleteRow(body.rows.length - 1); }
    $("feed").setAttribute("data-last", lastDefectId);
  }

  function paintToday(counts) {
    var list = $("today");
    list.textContent = "";
    var total = 0, max = 1;
    counts.forEach(function (c) { total += c.n; max = Math.max(max, c.n); });
    counts.forEach(function (c) {
      list.appendChild(ccl.el("li", {"data-type": c.defect_type}, [
        ccl.el("span", {className: "label", text: c.defect_type}),
        ccl.el("span", {className: "meter"}, [ccl.el("span", {style: "width:" + (100 * c.n / max) + "%;background:" + F.typeColour(c.defect_type)})]),
        ccl.el("span", {className: "n", text: F.num(c.n)})]));
    });
    if (!counts.length) { list.appendChild(ccl.el("li", {className: "muted", text: t("없음", "none")})); }
    text("today-total", F.num(total));
  }

  var LINK_KIND = {mes: "MES", gokiwon: "고기원", jetson: "Jetson"};
  function paintLinks(links) {
    var list = $("links");
    list.textContent = "";
    links.forEach(function (l) {
      list.appendChild(ccl.el("li", {"data-link": l.link}, [
        ccl.el("span", {className: "dot " + (l.connected ? "ok" : "bad")}),
        ccl.el("span", {className: "label", text: (LINK_KIND[l.kind] || l.kind) + " " + l.link}),
        ccl.el("span", {className: "muted small", text: l.last_seen_at ? F.when(l.last_seen_at) : ""})]));
    });
    if (!links.length) { list.appendChild(ccl.el("li", {className: "muted", text: t("없음", "none")})); }
  }

  function paintServices(value) {
    var list = $("services");
    list.textContent = "";
    if (!value.available) {
      list.appendChild(ccl.el("li", {className: "muted", title: value.reason || "", text: t("서비스 정보를 가져올 수 없습니다", "Service states unavailable")}));
      return;
    }
    value.services.forEach(function (s) {
      var st = String(s.state || s.status || "unknown").toLowerCase();
      list.appendChild(ccl.el("li", {}, [
        ccl.el("span", {className: "dot " + (st === "running" ? "ok" : st === "stopped" || st === "fatal" ? "bad" : "warn")}),
        ccl.el("span", {className: "label", text: s.id}), ccl.el("span", {className: "state state-" + st, text: st})]));
    });
  }

  var ALERT = {info: "정보", warning: "경고", critical: "위험"};
  function paintAlerts(alerts) {
    var list = $("alerts");
    list.textContent = "";
    alerts.forEach(function (a) {
      list.appendChild(ccl.el("li", {className: "alert-" + a.severity}, [
        ccl.el("span", {className: "state state-" + a.severity, text: t(ALERT[a.severity] || a.severity, a.severity)}),
        ccl.el("span", {text: " " + a.message + " "}), ccl.el("span", {className: "muted small", text: F.when(a.raised_at)})]));
    });
    if (!alerts.length) { list.appendChild(ccl.el("li", {className: "muted", text: t("없음", "none")})); }
  }

  function paintBar(coil, defects) {
    state.coil_defects = defects;
    cclCoil.bar($("coil-bar"), {coil: coil, coilNumber: coil && coil.coil_number, tracking: coil && coil.tracking,
                                defects: defects, weldZone: settings.weld_zone_m, inspected: paintInspected()});
    cclCoil.legend($("bar-legend"), defects);
    text("bar-caption", coil ? coil.coil_number + " · " + defects.length + " " + t("건", "defects") : "");
  }

  function part(name, query) {
    return ccl.api("/api/dashboard?part=" + name + (query || "")).then(function (r) { return r.data; });
  }

  var refresh = {
    coil: cclLive.coalesce(function () {
      return part("coil_defects").then(function (v) { state.coil = v.coil; paintCoil(v.coil); paintBar(v.coil, v.defects); });
    }),
    speed: cclLive.coalesce(function () {
      var newest = state.speed.reduce(function (m, p) { return Math.max(m, p.id); }, 0);
      return part("speed", newest ? "&after=" + newest : "").then(function (points) { if (newest) { addSpeed(points); } else { paintSpeed(points); } });
    }),
    defects: cclLive.coalesce(function () {
      return part("defects", "&after=" + lastDefectId).then(function (defects) {
        paintFeed(defects, true);
        var current = state.coil && state.coil.coil_number;
        if (defects.some(function (d) { return d.coil_number === current; })) { refresh.coil(); }
      });
    }),
    // The newest defects again, with where tracking placed them since they were first shown.
    feed: cclLive.coalesce(function () {
      return part("defects").then(function (defects) {
        var body = document.querySelector("#feed tbody");
        defects.forEach(function (d) {
          var row = body.querySelector('tr[data-defect="' + d.id + '"]');
          if (row) { row.parentNode.replaceChild(defectRow(d, false), row); }
        });
      });
    }),
    today: cclLive.coalesce(function () { return part("today").then(paintToday); }),
    images: cclLive.coalesce(function () { return part("images").then(paintImages); }),
    links: cclLive.coalesce(function () { return part("links").then(paintLinks); }),
    alerts: cclLive.coalesce(function () { return part("alerts").then(paintAlerts); }),
    services: cclLive.coalesce(function () { return part("services").then(paintServices); })
  };

  // Tracking writes its coil results as it goes (no event of its own): follow them with the speed.
  var lastCoilRefresh = 0;
  /* Tracking's events: the running coil's inspected metres (with each speed sample), or
     placements written for some coils (the bar and the feed show them). */
  function onTracking(data) {
    var tracking = state.coil && state.coil.tracking;
    if (data && data.table === "tracking_coils" && tracking && data.tracked_coil === tracking.tracked_coil && data.inspected_m) {
      tracking.inspected_m = data.inspected_m;
      tracking.computed_at = new Date().toISOString();
      var bar = $("coil-bar"), most = paintInspected();
      if (bar.cclInspected) { bar.cclInspected(most); }
      return;
    }
    if (data && data.table === "tracking_coils") { refresh.coil(); return; }  // another coil runs now
    var coils = (data && data.tracked_coils) || [];
    if (!tracking || !coils.length || coils.indexOf(tracking.tracked_coil) >= 0) { refresh.coil(); }
    refresh.feed();
  }

  function onEvent(name, data) {
    if (name === "tracking") { onTracking(data); return; }
    if (name === "speed") {
      refresh.speed();
      if (Date.now() - lastCoilRefresh > 10000) { lastCoilRefresh = Date.now(); refresh.coil(); }
    }
    else if (name === "coil") { refresh.coil(); }
    else if (name === "defect") { refresh.defects(); refresh.today(); }
    else if (name === "review") { refresh.today(); refresh.coil(); }
    else if (name === "image") { refresh.images(); }
    else if (name === "link") { refresh.links(); }
    else if (name === "alert") { refresh.alerts(); }
    else if (name === "hello") { Object.keys(refresh).forEach(function (k) { refresh[k](); }); }
  }

  function onState(value) {
    var el = $("live-state");
    el.className = "live-state " + value;
    el.textContent = el.getAttribute(value === "live" ? "data-live" : "data-down");
  }

  $("grey-toggle").addEventListener("click", function () {
    grey = !grey;
    document.querySelector(".dash-images .pair").classList.toggle("grey", grey);
    this.textContent = this.getAttribute(grey ? "data-colour" : "data-grey");
  });
  ["latest-original", "latest-labeled"].forEach(function (id) {
    $(id).addEventListener("click", function () { var v = this.getAttribute("data-image"); if (v) { cclViewer.open(v); } });
  });

  paintCoil(state.coil);
  paintSpeed(state.speed);
  paintImages(state.images);
  paintFeed(state.defects, false);
  paintToday(state.today);
  paintLinks(state.links);
  paintAlerts(state.alerts);
  paintBar(state.coil, state.coil_defects);
  refresh.services();
  window.setInterval(refresh.services, 10000);
  // Points age out of the 30-minute window even when the line stops sending.
  window.setInterval(function () { addSpeed([]); }, 15000);
  // The current coil's inspected metre advances with the line between two coil results.
  window.setInterval(function () {
    var most = paintInspected(), bar = $("coil-bar");
    if (bar.cclInspected) { bar.cclInspected(most); }
  }, 1000);
  cclLive.connect({onEvent: onEvent, onState: onState});
})();
