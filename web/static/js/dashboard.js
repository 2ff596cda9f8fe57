/* 실시간 모니터링: paints the state embedded in the page, then follows /api/events and
   fetches only the part that an event says changed (/api/dashboard?part=...). */
(function () {
  "use strict";
  var F = cclFormat, t = ccl.t;
  var state = JSON.parse(document.getElementById("dashboard-state").textContent);
  var FEED_ROWS = 30, SPEED_WINDOW = 30 * 60;
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
      ccl.el("td", {}, [ccl.el("span", {className: "swatch", style: "background:" + F.typeColour(d.defect_type)}), d.defect_type]),
      ccl.el("td", {}, [ccl.el("span", {className: "sev sev-" + d.severity, text: F.severity(d.severity)})]),
      ccl.el("td", {className: "num", text: F.num(d.confidence_score * 100, 1) + "%"}),
      ccl.el("td", {className: "num", text: F.num(d.defect_position_meter, 1)})]);
    return tr;
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
    cclCoil.bar($("coil-bar"), coil, defects);
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
    today: cclLive.coalesce(function () { return part("today").then(paintToday); }),
    images: cclLive.coalesce(function () { return part("images").then(paintImages); }),
    links: cclLive.coalesce(function () { return part("links").then(paintLinks); }),
    alerts: cclLive.coalesce(function () { return part("alerts").then(paintAlerts); }),
    services: cclLive.coalesce(function () { return part("services").then(paintServices); })
  };

  function onEvent(name) {
    if (name === "speed") { refresh.speed(); }
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
  cclLive.connect({onEvent: onEvent, onState: onState});
})();
